// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The kernel log reader (daemon/kmsg-reader.c) against a stand-in for /dev/kmsg (its reads and
 * seeks, with a past, overwritten records and -EPIPE) and against a fixture's FIFO: where it
 * starts, each record once across restarts, a reboot, lost records, a storm in bounded batches,
 * records split across reads, a log it cannot read. As root, once against the real /dev/kmsg.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/kmsg-reader.h"
#include "shared/fileio.h"
#include "shared/host.h"
#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

#define CAPACITY 2048 /* records the stand-in keeps before it overwrites the oldest */
#define BOOT_A "0f4e1f2a-7a56-4c1b-9d0e-2b6f3a1c5d7e"
#define BOOT_B "a81c3e55-01d2-4b8e-b7a4-6e9f0c2d4b13"

/* The stand-in for /dev/kmsg: records first..next-1 ("6,SEQ,USEC,-;line SEQ"), a reader's
 * position, and an overrun the next read reports. */
struct fake_kmsg {
	uint64_t first, next, pos;
	bool epipe;
	unsigned epipes;
};

struct env {
	char *root, *state_dir;
	struct xpu_host *host;
	sd_event *event;
	struct fake_kmsg fake;
	struct kmsg_reader_io io;
	struct kmsg_reader *reader;
	bool fake_mode; /* the stand-in is read, not the FIFO */
	int poke;	/* a writer of dev/kmsg: makes the reader's fd readable */
	uint64_t seen[4096];
	size_t n_seen;
	char last_msg[256];
	char all[16384]; /* every message seen, a line each (the real log's test) */
	size_t batch, max_batch, batches;
};

static ssize_t fake_read(int fd, void *buf, size_t size, void *userdata)
{
	struct fake_kmsg *f = userdata;
	char drain[64];
	int n;

	if (f->epipe || f->pos < f->first) {
		/* as the kernel: the next read is the oldest record left */
		f->epipe = false;
		f->epipes++;
		f->pos = f->first;
		errno = EPIPE;
		return -1;
	}
	if (f->pos >= f->next) {
		/* caught up: the FIFO, which only said "readable", is drained (the kernel's
		 * device stays readable while records are left, and so does the stand-in) */
		while (read(fd, drain, sizeof(drain)) > 0)
			;
		errno = EAGAIN;
		return -1;
	}
	n = snprintf(buf, size, "6,%llu,%llu,-;line %llu\n", (unsigned long long)f->pos,
		     (unsigned long long)f->pos * 1000, (unsigned long long)f->pos);
	f->pos++;
	return n;
}

static off_t fake_seek(int fd, off_t offset, int whence, void *userdata)
{
	struct fake_kmsg *f = userdata;

	assert_int_equal(offset, 0);
	assert_true(whence == SEEK_SET || whence == SEEK_END);
	f->pos = whence == SEEK_SET ? f->first : f->next;
	return 0;
}

/* Appends records up to @last (the oldest overwritten beyond CAPACITY). */
static void fake_append(struct fake_kmsg *f, uint64_t last)
{
	f->next = last + 1;
	if (f->next - f->first > CAPACITY)
		f->first = f->next - CAPACITY;
}

static void on_record(const struct kmsg_record *rec, void *userdata)
{
	struct env *e = userdata;

	if (!rec) {
		e->max_batch = MAX(e->max_batch, e->batch);
		e->batch = 0;
		e->batches++;
		return;
	}
	assert_true(e->n_seen < ELEMENTSOF(e->seen));
	e->seen[e->n_seen++] = rec->seq;
	e->batch++;
	snprintf(e->last_msg, sizeof(e->last_msg), "%.*s", (int)rec->msg_len, rec->msg);
	if (strlen(e->all) + rec->msg_len + 2 < sizeof(e->all))
		snprintf(e->all + strlen(e->all), sizeof(e->all) - strlen(e->all), "%.*s\n",
			 (int)rec->msg_len, rec->msg);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir_parents(path, 0755), 0);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *dir, const char *name)
{
	char path[4096], *text = NULL;
	size_t len;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	assert_int_equal(read_full_fd(fd, 4096, &text, &len), 0);
	close(fd);
	return text;
}

/* What KMSG_STATE_FILE says is the last record handled. */
static void assert_saved(const struct env *e, const char *want)
{
	_cleanup_free_ char *saved = read_file(e->state_dir, KMSG_STATE_FILE);

	assert_non_null(saved);
	assert_string_equal(saved, want);
}

/* A tree with dev/kmsg (a FIFO) and @boot_id (NULL: none), a state directory; nothing runs. */
static struct env *env_new(const char *boot_id)
{
	struct env *e = calloc(1, sizeof(*e));
	char *err = NULL, path[4096];

	assert_non_null(e);
	assert_int_equal(fixture_build_temp("{\"name\": \"kmsg\"}", &e->root, &err), 0);
	if (boot_id) {
		snprintf(path, sizeof(path), "%s\n", boot_id);
		write_file(e->root, "proc/sys/kernel/random/boot_id", path);
	}
	assert_true(asprintf(&e->state_dir, "%s/state", e->root) > 0);
	assert_int_equal(mkdir(e->state_dir, 0700), 0);
	assert_int_equal(host_open(e->root, &e->host), 0);
	assert_int_equal(sd_event_new(&e->event), 0);
	e->fake.first = e->fake.next = 1;
	e->io = (struct kmsg_reader_io){ fake_read, fake_seek, true, &e->fake };
	e->poke = -EBADF;
	return e;
}

static int env_start(struct env *e, bool fake)
{
	_cleanup_free_ char *reason = NULL;
	char fifo[4096];
	int r;

	r = kmsg_reader_new(e->event,
			    &(struct kmsg_reader_options){ .host = e->host,
							    .state_dir = e->state_dir,
							    .record = on_record,
							    .userdata = e,
							    .io = fake ? &e->io : NULL,
							    .save_delay_usec = 1 },
			    &e->reader, &reason);
	if (r < 0)
		return r;
	e->fake_mode = fake;
	snprintf(fifo, sizeof(fifo), "%s/dev/kmsg", e->root);
	safe_close(e->poke);
	e->poke = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(e->poke >= 0);
	return 0;
}

static void env_stop(struct env *e)
{
	e->reader = kmsg_reader_free(e->reader);
	e->poke = safe_close(e->poke);
}

static void env_free(struct env *e)
{
	env_stop(e);
	sd_event_unref(e->event);
	host_free(e->host);
	assert_int_equal(fixture_destroy(e->root), 0);
	free(e->root);
	free(e->state_dir);
	free(e);
}

/* Turns the loop until it has nothing to do (and the reader was told there is news). */
static void run(struct env *e)
{
	if (e->fake_mode)
		assert_int_equal(write(e->poke, "x", 1), 1);
	for (int i = 0; i < 10000; i++)
		if (sd_event_run(e->event, 20 * 1000) == 0)
			break;
}

static void assert_seen(struct env *e, uint64_t from, uint64_t to)
{
	assert_int_equal(e->n_seen, to + 1 - from);
	for (size_t i = 0; i < e->n_seen; i++)
		assert_int_equal(e->seen[i], from + i);
	e->n_seen = 0;
}

/* The first start: what the kernel logged before is not acted on; what comes after is. */
static void test_first_start_at_end(void **state)
{
	struct env *e = env_new(BOOT_A);

	fake_append(&e->fake, 5);
	assert_int_equal(env_start(e, true), 0);
	run(e);
	assert_int_equal(e->n_seen, 0);
	assert_null(read_file(e->state_dir, KMSG_STATE_FILE));

	fake_append(&e->fake, 7);
	run(e);
	assert_seen(e, 6, 7);
	assert_saved(e, "7 " BOOT_A "\n");
	env_free(e);
}

/* A restart reads on after the last record handled: each once, none missed. */
static void test_resume(void **state)
{
	struct env *e = env_new(BOOT_A);
	struct stat before, after;
	char path[4096];

	assert_int_equal(env_start(e, true), 0);
	fake_append(&e->fake, 3);
	run(e);
	assert_seen(e, 1, 3);

	/* stopped, the kernel logs on; started again: exactly the new ones */
	env_stop(e);
	fake_append(&e->fake, 6);
	assert_int_equal(env_start(e, true), 0);
	run(e);
	assert_seen(e, 4, 6);
	fake_append(&e->fake, 7);
	run(e);
	assert_seen(e, 7, 7);

	/* a restart with nothing new hands nothing on, and writes nothing */
	snprintf(path, sizeof(path), "%s/" KMSG_STATE_FILE, e->state_dir);
	assert_int_equal(stat(path, &before), 0);
	env_stop(e);
	assert_int_equal(env_start(e, true), 0);
	run(e);
	assert_int_equal(e->n_seen, 0);
	assert_int_equal(stat(path, &after), 0);
	assert_true(before.st_ino == after.st_ino);
	assert_saved(e, "7 " BOOT_A "\n");
	env_free(e);
}

/* Records overwritten while xpud was not running: a warning names them, reading goes on. */
static void test_resume_lost(void **state)
{
	struct env *e = env_new(BOOT_A);
	_cleanup_free_ char *log = NULL;

	write_file(e->state_dir, KMSG_STATE_FILE, "5 " BOOT_A "\n");
	e->fake.first = 9;
	fake_append(&e->fake, 11);
	test_stderr_capture();
	assert_int_equal(env_start(e, true), 0);
	run(e);
	log = test_stderr_captured();
	assert_seen(e, 9, 11);
	assert_non_null(strstr(log, "3 records of the kernel log (sequence numbers 6 to 8) were "
				    "overwritten while xpud was not reading it"));
	env_free(e);
}

/* Another boot: its whole log is new, from the beginning, also what is numbered below the
 * last record read in the boot before. */
static void test_reboot(void **state)
{
	struct env *e = env_new(BOOT_B);

	write_file(e->state_dir, KMSG_STATE_FILE, "2 " BOOT_A "\n");
	fake_append(&e->fake, 5);
	assert_int_equal(env_start(e, true), 0);
	run(e);
	assert_seen(e, 1, 5);
	assert_saved(e, "5 " BOOT_B "\n");
	env_free(e);
}

/* No boot id to compare: a log that ends before the saved number is another boot's. */
static void test_reboot_without_boot_id(void **state)
{
	struct env *e = env_new(NULL);

	write_file(e->state_dir, KMSG_STATE_FILE, "100\n");
	fake_append(&e->fake, 3);
	assert_int_equal(env_start(e, true), 0);
	run(e);
	assert_seen(e, 1, 3);
	fake_append(&e->fake, 4);
	run(e);
	assert_seen(e, 4, 4);
	env_free(e);
}

/* The kernel overwrote records not yet read (-EPIPE): a warning with how many, then on. */
static void test_overrun(void **state)
{
	struct env *e = env_new(BOOT_A);
	_cleanup_free_ char *log = NULL;

	assert_int_equal(env_start(e, true), 0);
	fake_append(&e->fake, 4);
	run(e);
	assert_seen(e, 1, 4);

	/* 5 and 6 gone before the reader got to them */
	fake_append(&e->fake, 8);
	e->fake.first = 7;
	test_stderr_capture();
	run(e);
	log = test_stderr_captured();
	assert_int_equal(e->fake.epipes, 1);
	assert_seen(e, 7, 8);
	assert_non_null(strstr(log, "2 records of the kernel log (sequence numbers 5 to 6) were "
				    "overwritten before xpud read them"));
	assert_saved(e, "8 " BOOT_A "\n");

	/* an overrun with nothing lost in between (the kernel said so, nothing missing) */
	e->fake.epipe = true;
	fake_append(&e->fake, 9);
	run(e);
	assert_seen(e, 9, 9);
	env_free(e);
}

/* A storm is read in batches of at most KMSG_BATCH_MAX, every record once, in order. */
static void test_batches(void **state)
{
	struct env *e = env_new(BOOT_A);

	assert_int_equal(env_start(e, true), 0);
	fake_append(&e->fake, 1000);
	run(e);
	assert_true(e->max_batch <= KMSG_BATCH_MAX);
	assert_true(e->batches >= 1000 / KMSG_BATCH_MAX);
	assert_seen(e, 1, 1000);
	env_free(e);
}

/* A fixture's FIFO: several records per read, one cut in two, dictionary lines, garbage. */
static void test_fifo_stream(void **state)
{
	static const char part1[] = "4,1,10,-;one\n"
				    "4,2,20,-;two\n SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n"
				    "not a record at all\n"
				    "4,3,30,-;thr";
	static const char part2[] = "ee\n4,4,40,c;four\n";
	static const char again[] = "6,1004,1,-;again\n6,1005,2,-;new\n";
	struct env *e = env_new(BOOT_A);
	_cleanup_free_ char *log = NULL, *big = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(env_start(e, false), 0);
	test_stderr_capture();
	test_kmsg_write(e->root, part1, strlen(part1));
	run(e);
	assert_seen(e, 1, 2);
	test_kmsg_write(e->root, part2, strlen(part2));
	run(e);
	log = test_stderr_captured();
	assert_seen(e, 3, 4);
	assert_string_equal(e->last_msg, "four");
	assert_non_null(strstr(log, "Cannot read a record of the kernel log ('not a record at "
				    "all"));

	/* 1,000 records in one go (more than one read): batches of at most KMSG_BATCH_MAX */
	e->max_batch = 0;
	f = open_memstream(&big, &len);
	assert_non_null(f);
	for (int i = 5; i <= 1004; i++)
		fprintf(f, "6,%d,%d,-;line %d\n", i, i, i);
	assert_int_equal(fclose(f), 0);
	assert_true(len > 16384);
	test_kmsg_write(e->root, big, len);
	run(e);
	assert_int_equal(e->max_batch, KMSG_BATCH_MAX);
	assert_seen(e, 5, 1004);

	/* a FIFO has no past: a restart hands on only what is written after, and skips what
	 * was handled (a writer that numbers from where it was) */
	env_stop(e);
	assert_int_equal(env_start(e, false), 0);
	test_kmsg_write(e->root, again, strlen(again));
	run(e);
	assert_seen(e, 1005, 1005);
	assert_saved(e, "1005 " BOOT_A "\n");
	env_free(e);
}

/* A log that cannot be read is an error with a reason, not a crash. */
static void test_unreadable(void **state)
{
	struct env *e = env_new(BOOT_A);
	_cleanup_free_ char *reason = NULL;
	char path[4096];
	int r;

	snprintf(path, sizeof(path), "%s/dev/kmsg", e->root);
	assert_int_equal(unlink(path), 0);
	r = kmsg_reader_new(e->event,
			    &(struct kmsg_reader_options){ .host = e->host, .record = on_record },
			    &e->reader, &reason);
	assert_int_equal(r, -ENOENT);
	assert_non_null(strstr(reason, "/dev/kmsg: No such file or directory"));
	reason = mfree(reason);

	assert_int_equal(mkdir(path, 0755), 0);
	r = kmsg_reader_new(e->event,
			    &(struct kmsg_reader_options){ .host = e->host, .record = on_record },
			    &e->reader, &reason);
	assert_int_equal(r, -EISDIR);
	assert_non_null(strstr(reason, "/dev/kmsg: Is a directory"));
	assert_null(e->reader);
	env_free(e);
}

/* Writes the line @text to the real /dev/kmsg (root only: a record of facility "user"). */
static void kmsg_write_real(const char *text)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	char line[128];
	int n;

	assert_true(fd >= 0);
	n = snprintf(line, sizeof(line), "<4>%s\n", text);
	assert_int_equal(write(fd, line, (size_t)n), n);
	close(fd);
}

/* Turns the loop until a record says @token (5 s at most). */
static bool run_until(struct env *e, const char *token)
{
	for (int i = 0; i < 250 && !strstr(e->all, token); i++)
		(void)sd_event_run(e->event, 20 * 1000);
	return strstr(e->all, token);
}

static int start_real(struct env *e)
{
	_cleanup_free_ char *reason = NULL;

	return kmsg_reader_new(e->event,
			       &(struct kmsg_reader_options){ .host = e->host,
							       .state_dir = e->state_dir,
							       .record = on_record,
							       .userdata = e },
			       &e->reader, &reason);
}

/* As root: the real /dev/kmsg, a record written to it read back, once. */
static void test_real_kmsg(void **state)
{
	char before[64], after[64], later[64];
	struct env *e;
	int r;

	if (geteuid() != 0 || access("/dev/kmsg", W_OK) < 0) {
		print_message("needs root and /dev/kmsg, skipped\n");
		skip();
	}
	e = env_new(NULL);
	host_free(e->host);
	assert_int_equal(host_open("/", &e->host), 0);
	snprintf(before, sizeof(before), "xpud-test %d before", getpid());
	snprintf(after, sizeof(after), "xpud-test %d after", getpid());
	snprintf(later, sizeof(later), "xpud-test %d later", getpid());

	kmsg_write_real(before);
	r = start_real(e);
	if (r == -EPERM || r == -EACCES) {
		print_message("/dev/kmsg not readable here, skipped\n");
		env_free(e);
		skip();
	}
	assert_int_equal(r, 0);
	kmsg_write_real(after);
	assert_true(run_until(e, after));
	/* started at the end: what was logged before is not handed on */
	assert_null(strstr(e->all, before));

	/* stopped and started again: on from the last record read, nothing twice */
	e->reader = kmsg_reader_free(e->reader);
	e->all[0] = '\0';
	kmsg_write_real(later);
	assert_int_equal(start_real(e), 0);
	assert_true(run_until(e, later));
	assert_null(strstr(e->all, after));
	assert_null(strstr(e->all, before));
	env_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_start_at_end),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_resume_lost),
		cmocka_unit_test(test_reboot),
		cmocka_unit_test(test_reboot_without_boot_id),
		cmocka_unit_test(test_overrun),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_fifo_stream),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_real_kmsg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
