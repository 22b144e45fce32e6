// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * xpud killed with SIGKILL at random moments while several clients grant and release GPUs
 * as fast as it answers them. After each restart, what the clients were told holds: every
 * grant answered 201 and not released with a 200 is there, once, with the slices it was
 * given; every release answered 200 is gone; and no slice was ever held by two allocations
 * at once. The moments are random; the seed is printed, and XPU_FAULT_SEED repeats a run.
 * (test-allocations kills xpud at each named step of one grant; this kills it anywhere.)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"
#include "xpu/client.h"

/* Each GPU as four replicas: enough slices that the clients rarely find none free. */
#define GPU "nvidia.com/gpu.shared"
#define CONFIG "partitions:\n  - match: {vendor: nvidia}\n    replicas: 4\n"
#define CLIENTS 4
#define ROUNDS 10
#define MAX_RECORDS 8192

/* One allocation as the clients saw it. */
struct record {
	char id[64];
	char slices[256];      /* "a,b" as the grant answered */
	long long granted_ms;  /* when the 201 arrived */
	long long released_ms; /* when the release was sent; LLONG_MAX while held */
	bool release_acked;    /* the release was answered 200 */
	bool release_unknown;  /* the release was sent, xpud died before answering */
};

static struct record records[MAX_RECORDS];
static size_t n_records;

static struct record *find_record(const char *id)
{
	for (size_t i = 0; i < n_records; i++)
		if (streq(records[i].id, id))
			return &records[i];
	return NULL;
}

/* "a,b" from a grant's or a listing's slices (strings or objects with an id). */
static void join_slices(json_t *slices, char *buf, size_t size)
{
	json_t *s;
	size_t i;

	buf[0] = '\0';
	json_array_foreach (slices, i, s) {
		const char *id = json_is_string(s) ? json_string_value(s)
						   : json_string_value(json_object_get(s, "id"));

		if (i > 0)
			strncat(buf, ",", size - strlen(buf) - 1);
		strncat(buf, id ?: "?", size - strlen(buf) - 1);
	}
}

static int request(const char *socket, const char *method, const char *path, const char *body,
		   json_t **ret)
{
	struct xpu_client *c = NULL;
	json_t *req = body ? json_loads(body, 0, NULL) : NULL;
	int status = 0, r;

	r = xpu_client_new(socket, &c);
	if (r >= 0)
		r = xpu_client_request(c, method, path, req, &status, ret);
	xpu_client_free(c);
	json_decref(req);
	return r < 0 ? r : status;
}

/*
 * A client: grants and releases until xpud stops answering, writing one line per outcome to
 * @log_fd: "G id granted_ms slices", "R id sent_ms" (answered 200), "U id sent_ms" (sent, no
 * answer). Exits 0, or 1 on an answer no client should get.
 */
static void client_main(const char *socket, int log_fd, unsigned seed)
{
	char held[2][64] = {"", ""};
	char line[512];
	int bad = 0;

	srandom(seed);
	for (long long end = test_now_ms() + 20000; test_now_ms() < end;) {
		int slot = (int)(random() % 2);

		if (!held[slot][0]) {
			json_t *doc = NULL;
			char slices[256];
			int st = request(socket, "POST", "/v1/allocations",
					 random() % 4 ? "{\"resource\": \"" GPU "\"}"
						      : "{\"resource\": \"" GPU "\", \"count\": 2}",
					 &doc);

			if (st < 0)
				break;
			if (st == 201) {
				const char *id = json_string_value(json_object_get(doc, "id"));

				join_slices(json_object_get(doc, "slices"), slices, sizeof(slices));
				snprintf(held[slot], sizeof(held[slot]), "%s", id ?: "?");
				snprintf(line, sizeof(line), "G %s %lld %s\n", held[slot],
					 test_now_ms(), slices);
				if (write(log_fd, line, strlen(line)) < 0)
					bad = 1;
			} else if (st != 409) {
				fprintf(stderr, "client: grant answered %d\n", st);
				bad = 1;
			}
			json_decref(doc);
		} else {
			char path[128];
			long long sent = test_now_ms();
			int st;

			snprintf(path, sizeof(path), "/v1/allocations/%s", held[slot]);
			st = request(socket, "DELETE", path, NULL, NULL);
			if (st < 0) {
				snprintf(line, sizeof(line), "U %s %lld\n", held[slot], sent);
				if (write(log_fd, line, strlen(line)) < 0)
					bad = 1;
				break;
			}
			if (st != 200) {
				fprintf(stderr, "client: release of %s answered %d\n", held[slot],
					st);
				bad = 1;
			}
			snprintf(line, sizeof(line), "R %s %lld\n", held[slot], sent);
			if (write(log_fd, line, strlen(line)) < 0)
				bad = 1;
			held[slot][0] = '\0';
		}
	}
	_exit(bad);
}

static void read_client_log(const char *path)
{
	_cleanup_free_ char *text = NULL;
	char *save = NULL;

	if (read_attr_at(AT_FDCWD, path, 16 << 20, &text) == -ENODATA)
		return;
	assert_non_null(text);
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char kind, id[64], slices[256] = "";
		long long ms;
		struct record *r;

		assert_true(sscanf(l, "%c %63s %lld %255s", &kind, id, &ms, slices) >= 3);
		if (kind == 'G') {
			assert_null(find_record(id)); /* an id is never handed out twice */
			assert_true(n_records < MAX_RECORDS);
			r = &records[n_records++];
			snprintf(r->id, sizeof(r->id), "%s", id);
			snprintf(r->slices, sizeof(r->slices), "%s", slices);
			r->granted_ms = ms;
			r->released_ms = LLONG_MAX;
			continue;
		}
		r = find_record(id);
		assert_non_null(r);
		r->released_ms = ms;
		r->release_acked = kind == 'R';
		r->release_unknown = kind == 'U';
	}
}

/*
 * What xpud holds after the restart against what the clients were told. Returns the number of
 * allocations it holds.
 */
static size_t check_after_restart(struct test_xpud *x)
{
	json_t *doc = NULL, *a;
	size_t i, n_gpu_slices = 0;
	char seen[128][256];
	size_t n_seen = 0;

	assert_int_equal(test_request(x, "GET", "/v1/allocations", &doc), 200);
	json_array_foreach (json_object_get(doc, "allocations"), i, a) {
		const char *id = json_string_value(json_object_get(a, "id"));
		struct record *r = find_record(id);
		json_t *s;
		size_t j;
		char slices[256];

		join_slices(json_object_get(a, "slices"), slices, sizeof(slices));
		/* listed once */
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(
			    json_string_value(json_object_get(
				json_array_get(json_object_get(doc, "allocations"), k), "id")),
			    id);
		/* a grant nobody was told of: xpud died between saving and answering */
		if (!r) {
			assert_true(n_records < MAX_RECORDS);
			r = &records[n_records++];
			snprintf(r->id, sizeof(r->id), "%s", id);
			snprintf(r->slices, sizeof(r->slices), "%s", slices);
			r->granted_ms = test_now_ms();
			r->released_ms = LLONG_MAX;
			print_message("allocation %s was saved but not answered before the kill\n",
				      id);
		}
		if (r->release_acked)
			fail_msg("allocation %s was released (200) but is back after the restart",
				 id);
		if (r->release_unknown) {
			/* the release was lost with xpud: it is held again */
			r->release_unknown = false;
			r->released_ms = LLONG_MAX;
		}
		assert_string_equal(slices, r->slices);
		json_array_foreach (json_object_get(a, "slices"), j, s) {
			const char *sid = json_is_string(s)
					      ? json_string_value(s)
					      : json_string_value(json_object_get(s, "id"));

			for (size_t k = 0; k < n_seen; k++)
				if (streq(seen[k], sid))
					fail_msg("slice %s is in two allocations after the restart",
						 sid);
			assert_true(n_seen < 128);
			snprintf(seen[n_seen++], sizeof(seen[0]), "%s", sid);
		}
		n_gpu_slices += json_array_size(json_object_get(a, "slices"));
	}
	/* every grant that was answered and not released is there */
	for (size_t k = 0; k < n_records; k++) {
		struct record *r = &records[k];
		bool present = false;

		json_array_foreach (json_object_get(doc, "allocations"), i, a)
			present =
			    present || streq(json_string_value(json_object_get(a, "id")), r->id);
		if (r->release_unknown) {
			/* released before xpud died, and that stood */
			r->release_unknown = false;
			r->release_acked = true;
		}
		if (!r->release_acked && !present)
			fail_msg(
			    "allocation %s (%s) was granted (201) but is lost after the restart",
			    r->id, r->slices);
	}
	assert_int_equal(test_capacity(x, GPU, "allocated"), (json_int_t)n_gpu_slices);
	i = json_array_size(json_object_get(doc, "allocations"));
	json_decref(doc);
	return i;
}

/* No slice was held by two allocations at one time, as far as the clients could tell. */
static void check_no_double_grant(void)
{
	for (size_t i = 0; i < n_records; i++)
		for (size_t j = i + 1; j < n_records; j++) {
			const struct record *a = &records[i], *b = &records[j];
			char sa[256], *save = NULL;
			bool share = false;

			/* held for certain from the 201 until the release was sent */
			if (a->granted_ms >= b->released_ms || b->granted_ms >= a->released_ms)
				continue;
			snprintf(sa, sizeof(sa), "%s", a->slices);
			for (char *s = strtok_r(sa, ",", &save); s;
			     s = strtok_r(NULL, ",", &save)) {
				char needle[270];

				snprintf(needle, sizeof(needle), ",%s,", s);
				char hay[270];
				snprintf(hay, sizeof(hay), ",%s,", b->slices);
				share = share || strstr(hay, needle);
			}
			if (share)
				fail_msg(
				    "allocations %s (%s) and %s (%s) held a slice at the same time",
				    a->id, a->slices, b->id, b->slices);
		}
}

static struct test_xpud *start(char *root)
{
	char conf[4200];
	int fd;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, CONFIG, strlen(CONFIG)), (ssize_t)strlen(CONFIG));
	close(fd);
	return test_xpud_start_nvml(root, (const char *[]){"--config", conf, NULL}, NULL);
}

static void test_kill_under_load(void **state)
{
	const char *seed_env = getenv("XPU_FAULT_SEED");
	unsigned seed =
	    seed_env ? (unsigned)strtoul(seed_env, NULL, 0) : (unsigned)(test_now_ms() ^ getpid());
	struct test_xpud *x;
	char logs[4200];
	size_t total_granted = 0, total_lost_releases = 0;

	print_message("seed %u (XPU_FAULT_SEED=%u repeats this run)\n", seed, seed);
	srandom(seed);
	x = start(test_fixture_new("hgx-h100"));
	/* the clients' logs live in the tree, which outlives each xpud */
	snprintf(logs, sizeof(logs), "%s/client-logs", x->root);
	assert_int_equal(mkdir(logs, 0755), 0);

	for (int round = 0; round < ROUNDS; round++) {
		pid_t clients[CLIENTS];
		char path[CLIENTS][4300];
		long long load_ms = 50 + random() % 700;
		int status;
		size_t before = n_records, held;

		for (int c = 0; c < CLIENTS; c++) {
			int fd;

			snprintf(path[c], sizeof(path[c]), "%s/client-%d-%d", logs, round, c);
			fd = open(path[c], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
				  0644);
			assert_true(fd >= 0);
			clients[c] = fork();
			assert_true(clients[c] >= 0);
			if (clients[c] == 0)
				client_main(x->socket, fd, seed + (unsigned)(round * CLIENTS + c));
			close(fd);
		}
		usleep((useconds_t)load_ms * 1000);
		assert_int_equal(kill(x->pid, SIGKILL), 0);
		status = test_xpud_wait_exit(x, 10000);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		for (int c = 0; c < CLIENTS; c++) {
			assert_int_equal(waitpid(clients[c], &status, 0), clients[c]);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			read_client_log(path[c]);
			unlink(path[c]);
		}
		for (size_t k = before; k < n_records; k++)
			total_granted++;
		for (size_t k = 0; k < n_records; k++)
			total_lost_releases += records[k].release_unknown;

		{
			char *root = test_xpud_take_root(x);

			test_xpud_free(x);
			x = start(root);
		}
		held = check_after_restart(x);
		print_message(
		    "round %d: killed after %lld ms of load, %zu grants so far, %zu held\n", round,
		    load_ms, n_records, held);

		/* every other round, release what is held, so that later rounds find free GPUs */
		if (round % 2 == 1)
			for (size_t k = 0; k < n_records; k++) {
				struct record *r = &records[k];
				char p[128];

				if (r->release_acked)
					continue;
				snprintf(p, sizeof(p), "/v1/allocations/%s", r->id);
				r->released_ms = test_now_ms();
				assert_int_equal(test_request_body(x, "DELETE", p, NULL, NULL),
						 200);
				r->release_acked = true;
			}
	}
	check_no_double_grant();
	/* the load did something: grants were made and killed mid-way */
	assert_true(total_granted > ROUNDS);
	print_message("%zu grants, %zu releases unanswered at a kill\n", total_granted,
		      total_lost_releases);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill_under_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
