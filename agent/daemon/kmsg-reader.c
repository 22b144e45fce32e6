// SPDX-License-Identifier: GPL-2.0-or-later
/* The kernel's log on the loop: records in order, each once, from where xpud left off. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/kmsg-reader.h"
#include "shared/clock.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"

/* One read() of /dev/kmsg must hold a whole record (8 KiB of text and its dictionary), or the
 * kernel answers -EINVAL. */
#define KMSG_BUFFER_SIZE (16 * 1024)
#define BOOT_ID_MAX 36 /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
#define BAD_RECORD_INTERVAL_USEC (60 * 1000000ULL)

struct kmsg_reader {
	sd_event_source *source;
	sd_event_source *more; /* defer: records left in the buffer when a batch was full */
	sd_event_source *save; /* timer: KMSG_STATE_FILE, a while after a batch changed it */
	uint64_t save_delay_usec;
	bool save_armed;
	int fd;
	int state_fd; /* the state directory, or -EBADF */
	char *path;   /* for messages: "/dev/kmsg" as xpud sees it */
	bool records; /* one record per read (the kernel's device); else a stream of lines */
	char boot_id[BOOT_ID_MAX + 1]; /* "" when unknown */

	bool have_last; /* a record was handled (or one saved as handled), @last */
	uint64_t last;
	bool have_saved; /* what KMSG_STATE_FILE says now */
	uint64_t saved;
	bool resuming;	/* from a saved number, nothing past it seen yet */
	bool seen_any;	/* while resuming: a record was read, the largest @max_seen */
	uint64_t max_seen;
	bool overrun;	/* the kernel said it overwrote records (-EPIPE) */
	bool save_failed;
	uint64_t bad_warned_usec;

	char buf[KMSG_BUFFER_SIZE];
	size_t len; /* stream: bytes read, not yet handled */

	void (*record)(const struct kmsg_record *rec, void *userdata);
	void (*stopped)(const char *reason, void *userdata);
	void *userdata;
	const struct kmsg_reader_io *io;
};

static ssize_t do_read(struct kmsg_reader *r, void *buf, size_t size)
{
	if (r->io && r->io->read)
		return r->io->read(r->fd, buf, size, r->io->userdata);
	return read(r->fd, buf, size);
}

static int do_seek(struct kmsg_reader *r, int whence)
{
	off_t k;

	k = r->io && r->io->seek ? r->io->seek(r->fd, 0, whence, r->io->userdata)
				 : lseek(r->fd, 0, whence);
	return k < 0 ? -errno : 0;
}

/* @s[0..@n) for a message: printable ASCII, '?' for the rest, at most @size - 1 bytes. */
static const char *printable(const char *s, size_t n, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i < n && i + 1 < size; i++)
		buf[i] = s[i] >= 0x20 && s[i] <= 0x7e ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void read_boot_id(struct kmsg_reader *r, const struct xpu_host *host)
{
	_cleanup_free_ char *s = NULL;

	if (host->proc_fd < 0 ||
	    read_attr_at(host->proc_fd, "sys/kernel/random/boot_id", 64, &s) < 0)
		return;
	if (strlen(s) <= BOOT_ID_MAX && string_is_printable(s) && !strchr(s, ' '))
		strcpy(r->boot_id, s);
}

/* KMSG_STATE_FILE: "SEQ BOOT-ID\n", or "SEQ\n" when the boot id was unknown. */
static int load_state(struct kmsg_reader *r, uint64_t *ret_seq, char ret_boot[BOOT_ID_MAX + 1])
{
	_cleanup_free_ char *s = NULL;
	char *space;
	int k;

	if (r->state_fd < 0)
		return -ENOENT;
	k = read_attr_at(r->state_fd, KMSG_STATE_FILE, 256, &s);
	if (k < 0)
		return k;
	space = strchr(s, ' ');
	if (space)
		*space++ = '\0';
	if (safe_atou64(s, ret_seq) < 0 || (space && strlen(space) > BOOT_ID_MAX))
		return -EBADMSG;
	strcpy(ret_boot, space ?: "");
	return 0;
}

/* The last record handled, for the next start; only when it changed. */
static void save_state(struct kmsg_reader *r)
{
	char text[64 + BOOT_ID_MAX];
	int n, k;

	if (r->state_fd < 0 || !r->have_last || (r->have_saved && r->saved == r->last))
		return;
	n = snprintf(text, sizeof(text), "%" PRIu64 "%s%s\n", r->last, r->boot_id[0] ? " " : "",
		     r->boot_id);
	k = write_file_atomic_at(r->state_fd, KMSG_STATE_FILE, text, (size_t)n, 0600);
	if (k < 0) {
		if (!r->save_failed)
			log_warning_errno(k, "Failed to save how far the kernel log was read (%s): "
					     "a restart may read some of it again, ignoring: %m",
					  KMSG_STATE_FILE);
		r->save_failed = true;
		return;
	}
	r->save_failed = false;
	r->have_saved = true;
	r->saved = r->last;
}

static void bad_record(struct kmsg_reader *r, const char *s, size_t n, int error)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	char text[96];
	int level = LOG_DEBUG;

	if (!r->bad_warned_usec || now - r->bad_warned_usec >= BAD_RECORD_INTERVAL_USEC) {
		level = LOG_WARNING;
		r->bad_warned_usec = now;
	}
	log_full_errno(level, error, "Cannot read a record of the kernel log ('%s'), ignoring: %m",
		       printable(s, n, text, sizeof(text)));
}

/* One record: to the callback unless it was handled before. 1 when handed on, else 0. */
static int handle(struct kmsg_reader *r, const char *s, size_t n)
{
	struct kmsg_record rec;
	int k;

	if (n == 0 || (n == 1 && s[0] == '\n'))
		return 0;
	k = kmsg_parse_record(s, n, &rec);
	if (k < 0) {
		bad_record(r, s, n, k);
		return 0;
	}
	if (r->resuming) {
		r->max_seen = r->seen_any ? MAX(r->max_seen, rec.seq) : rec.seq;
		r->seen_any = true;
	}
	if (r->have_last && rec.seq <= r->last)
		return 0; /* handled before xpud restarted */
	r->resuming = false;
	if (r->have_last && rec.seq > r->last + 1)
		log_warning("%" PRIu64 " records of the kernel log (sequence numbers %" PRIu64
			    " to %" PRIu64 ") were overwritten %s: what they said is lost, "
			    "continuing.",
			    rec.seq - r->last - 1, r->last + 1, rec.seq - 1,
			    r->overrun ? "before xpud read them" : "while xpud was not reading it");
	r->overrun = false;
	r->have_last = true;
	r->last = rec.seq;
	r->record(&rec, r->userdata);
	return 1;
}

/*
 * Caught up while resuming, and nothing read reached the saved number: the log restarted (a
 * reboot the boot id did not tell, none being known), so all of it is new. True when the
 * position went back to its beginning.
 */
static bool resume_ended(struct kmsg_reader *r)
{
	r->resuming = false;
	if (r->seen_any && r->max_seen >= r->last)
		return false;
	log_info("The kernel log ends before record %" PRIu64 ", the last xpud read: the node has "
		 "rebooted; reading its log from the beginning.",
		 r->last);
	r->have_last = false;
	return do_seek(r, SEEK_SET) >= 0;
}

/* The kernel's device: one record per read. The number handed on, or -errno to stop. */
static int read_records(struct kmsg_reader *r)
{
	int n = 0;

	for (int reads = 0; reads < KMSG_BATCH_MAX; reads++) {
		ssize_t k = do_read(r, r->buf, sizeof(r->buf));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			if (r->resuming && resume_ended(r))
				continue;
			break;
		}
		if (k < 0 && errno == EPIPE) {
			/* the next read is the oldest record left; handle() counts the gap */
			if (!r->have_last)
				log_warning("The kernel overwrote records of its log before "
					    "xpud read them, how many is not known, continuing.");
			r->overrun = true;
			continue;
		}
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += handle(r, r->buf, (size_t)k);
	}
	return n;
}

/*
 * The whole records in the stream buffer, up to @budget of them: each ends at a newline that
 * the end of the data or a record's header follows (a dictionary line starts with a space).
 * Returns how many were handed on; *@ret_full when the budget ran out first.
 */
static int split(struct kmsg_reader *r, int budget, bool *ret_full)
{
	size_t start = 0;
	int n = 0;

	*ret_full = false;
	for (size_t i = 0; i < r->len; i++) {
		if (r->buf[i] != '\n' || (i + 1 < r->len && r->buf[i + 1] == ' '))
			continue;
		if (n >= budget) {
			*ret_full = true;
			break;
		}
		n += handle(r, r->buf + start, i + 1 - start);
		start = i + 1;
	}
	memmove(r->buf, r->buf + start, r->len - start);
	r->len -= start;
	if (r->len == sizeof(r->buf)) {
		bad_record(r, r->buf, r->len, -EMSGSIZE);
		r->len = 0;
	}
	return n;
}

/* A FIFO: several records, or part of one, per read. */
static int read_stream(struct kmsg_reader *r, bool *ret_full)
{
	int n = split(r, KMSG_BATCH_MAX, ret_full);

	while (!*ret_full && n < KMSG_BATCH_MAX) {
		ssize_t k = do_read(r, r->buf + r->len, sizeof(r->buf) - r->len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			break;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		r->len += (size_t)k;
		n += split(r, KMSG_BATCH_MAX - n, ret_full);
	}
	*ret_full |= n >= KMSG_BATCH_MAX;
	return n;
}

static void stop(struct kmsg_reader *r, int error)
{
	_cleanup_free_ char *reason = NULL;

	log_warning_errno(error, "Reading the kernel log (%s) failed, it is not read any more: %m",
			  r->path);
	(void)sd_event_source_set_enabled(r->source, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(r->more, SD_EVENT_OFF);
	if (asprintf(&reason, "%s: %s", r->path, strerror(-error)) < 0)
		reason = NULL;
	if (r->stopped)
		r->stopped(reason ?: "read failed", r->userdata);
}

static void dispatch(struct kmsg_reader *r)
{
	bool full = false;
	int n;

	n = r->records ? read_records(r) : read_stream(r, &full);
	if (n > 0)
		r->record(NULL, r->userdata);
	/* Not at once: the save waits for a disk (an fsync), and the loop has yet to write what
	 * the batch changed to clients; one save for all the batches of a while (a storm). A
	 * crash before it hands those records on again after the restart, which repeats what
	 * they said. */
	if (!r->save_armed && r->have_last && !(r->have_saved && r->saved == r->last)) {
		uint64_t now;

		if (sd_event_now(sd_event_source_get_event(r->save), CLOCK_MONOTONIC, &now) >= 0 &&
		    sd_event_source_set_time(r->save, now + r->save_delay_usec) >= 0 &&
		    sd_event_source_set_enabled(r->save, SD_EVENT_ONESHOT) >= 0)
			r->save_armed = true;
		else
			save_state(r);
	}
	if (n < 0)
		stop(r, n);
	else if (full)
		(void)sd_event_source_set_enabled(r->more, SD_EVENT_ONESHOT);
}

static int on_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	dispatch(userdata);
	return 0;
}

static int on_more(sd_event_source *s, void *userdata)
{
	dispatch(userdata);
	return 0;
}

static int on_save(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct kmsg_reader *r = userdata;

	r->save_armed = false;
	save_state(r);
	return 0;
}

/* The log below the host root, non-blocking; a FIFO read-write (no end of file, ever). */
static int open_log(struct kmsg_reader *r, const struct xpu_host *host)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (host->dev_fd < 0)
		return -ENOENT;
	fd = openat(host->dev_fd, "kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISFIFO(st.st_mode)) {
		safe_close(fd);
		fd = openat(host->dev_fd, "kmsg", O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return -errno;
	} else if (!S_ISCHR(st.st_mode)) {
		return -ENODEV;
	}
	r->records = S_ISCHR(st.st_mode) || (r->io && r->io->records);
	r->fd = TAKE_FD(fd);
	return 0;
}

/* Where reading starts (see kmsg-reader.h). */
static int position(struct kmsg_reader *r)
{
	char boot[BOOT_ID_MAX + 1];
	uint64_t seq;
	int k;

	k = load_state(r, &seq, boot);
	if (k < 0 && k != -ENOENT)
		log_warning_errno(k, "Cannot read %s, where xpud last stopped reading the kernel "
				     "log; starting at its end, ignoring: %m",
				  KMSG_STATE_FILE);
	if (k < 0) {
		log_debug("Reading the kernel log from its end.");
		return r->records ? do_seek(r, SEEK_END) : 0;
	}
	r->have_saved = true;
	r->saved = seq;
	if (r->boot_id[0] && boot[0] && !streq(boot, r->boot_id)) {
		log_info("The node has rebooted since xpud last read the kernel log: reading it "
			 "from the beginning.");
		return r->records ? do_seek(r, SEEK_SET) : 0;
	}
	log_debug("Reading the kernel log after record %" PRIu64 ".", seq);
	r->have_last = true;
	r->last = seq;
	r->resuming = r->records;
	return r->records ? do_seek(r, SEEK_SET) : 0;
}

static char *reason_of(const char *path, int error)
{
	char *s;

	if (asprintf(&s, "%s: %s%s", path, strerror(-error),
		     error == -EACCES || error == -EPERM
			     ? " (reading it takes CAP_SYSLOG where kernel.dmesg_restrict=1)"
			     : "") < 0)
		return NULL;
	return s;
}

int kmsg_reader_new(sd_event *e, const struct kmsg_reader_options *o, struct kmsg_reader **ret,
		    char **ret_reason)
{
	_cleanup_(kmsg_reader_freep) struct kmsg_reader *r = NULL;
	int k;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = -EBADF;
	r->state_fd = -EBADF;
	r->record = o->record;
	r->stopped = o->stopped;
	r->userdata = o->userdata;
	r->io = o->io;
	r->save_delay_usec = o->save_delay_usec ?: KMSG_SAVE_DELAY_USEC;
	if (asprintf(&r->path, "%s/dev/kmsg", o->host->is_real ? "" : o->host->root) < 0) {
		r->path = NULL;
		return -ENOMEM;
	}
	k = open_log(r, o->host);
	if (k < 0) {
		*ret_reason = reason_of(r->path, k);
		return *ret_reason ? k : -ENOMEM;
	}
	if (o->state_dir) {
		r->state_fd = open(o->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (r->state_fd < 0)
			log_warning_errno(errno, "Cannot open the state directory %s: where the "
						 "kernel log was read to is not kept, ignoring: %m",
					  o->state_dir);
	}
	read_boot_id(r, o->host);
	k = position(r);
	if (k < 0) {
		*ret_reason = reason_of(r->path, k);
		return *ret_reason ? k : -ENOMEM;
	}

	k = sd_event_add_io(e, &r->source, r->fd, EPOLLIN, on_readable, r);
	if (k >= 0)
		k = sd_event_add_defer(e, &r->more, on_more, r);
	if (k >= 0)
		k = sd_event_add_time(e, &r->save, CLOCK_MONOTONIC, UINT64_MAX, 0, on_save, r);
	if (k >= 0)
		k = sd_event_source_set_priority(r->save, SD_EVENT_PRIORITY_IDLE);
	if (k < 0) {
		*ret_reason = reason_of(r->path, k);
		return *ret_reason ? k : -ENOMEM;
	}
	(void)sd_event_source_set_enabled(r->more, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(r->save, SD_EVENT_OFF);
	(void)sd_event_source_set_description(r->source, "kmsg");
	(void)sd_event_source_set_description(r->more, "kmsg-more");
	(void)sd_event_source_set_description(r->save, "kmsg-save");
	log_debug("Reading the kernel log %s (%s).", r->path,
		  r->records ? "one record per read" : "a stream of records");
	*ret = TAKE_PTR(r);
	return 0;
}

struct kmsg_reader *kmsg_reader_free(struct kmsg_reader *r)
{
	if (!r)
		return NULL;
	save_state(r); /* what the last batch changed, if its save has not run */
	sd_event_source_disable_unref(r->source);
	sd_event_source_disable_unref(r->more);
	sd_event_source_disable_unref(r->save);
	safe_close(r->fd);
	safe_close(r->state_fd);
	free(r->path);
	free(r);
	return NULL;
}
