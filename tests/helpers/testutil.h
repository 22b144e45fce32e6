/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers shared by the test programs: the environment ctest sets, fixture trees in mkdtemp()
 * directories, the real xpud binary started on them, and its socket.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

/* The value of an environment variable ctest sets (XPUD_BIN, ...); exits 77 (skip) if unset. */
const char *test_env(const char *name);

/* The group tests configure as `admin-group`: in every Debian base system. */
#define TEST_ADMIN_GROUP "users"
/* The gid of TEST_ADMIN_GROUP; skips the test unless it runs as root and the group exists (a
 * test that changes to other users and groups). */
gid_t test_admin_group_gid(void);

/* Builds the embedded node @name into a new temporary directory. Fails the test on error. */
char *test_fixture_new(const char *name);

struct test_xpud {
	pid_t pid;
	char *root;	     /* the fixture tree (owned; removed by test_xpud_free) */
	char *socket;	     /* <root>/run/xpud.sock */
	char *uevent_socket; /* <root>/run/xpud-uevent.sock */
	char *log;	     /* <root>/xpud.log: xpud's stderr */
};

/*
 * Starts xpud on the tree @root (ownership passes) with extra arguments (NULL-terminated, may be
 * NULL) and waits for READY=1 on a private NOTIFY_SOCKET (20 s at most, 120 s under a wrapper).
 * Fails the test if xpud exits or never gets ready.
 *
 * XPU_TEST_WRAPPER, when set, is a command line (words split at spaces, no quoting) that xpud
 * runs under, e.g. "valgrind --leak-check=full --error-exitcode=99". Its error exit status must
 * be TEST_WRAPPER_ERROR_EXIT: test_xpud_stop() then fails the test with the wrapper's report.
 */
#define TEST_WRAPPER_ERROR_EXIT 99
struct test_xpud *test_xpud_start(char *root, const char *const *extra_args);
/*
 * The same with the fake NVML (XPU_FAKE_NVML_DIR/libnvidia-ml.so.1, or @library when not NULL)
 * fed from the tree's run/fake-nvml.json, and its events from the FIFO run/nvml-events when the
 * test made one. Skips the test (77) when the fakes were not built.
 */
struct test_xpud *test_xpud_start_nvml(char *root, const char *const *extra_args,
				       const char *library);
/* Writes one event line (tests/fakes/README.md, "Events") to the fake NVML's FIFO
 * <root>/run/nvml-events, which the test made before starting xpud. */
void test_nvml_inject(const char *root, const char *line);
/*
 * Writes records into the kernel log of the tree @root: its FIFO dev/kmsg, which xpud reads as
 * it reads /dev/kmsg (it must be running). @line is one of
 *   "xid BUS XID [GI CI]\n"  the NVIDIA driver's report of XID on the GPU BUS ("0000:18:00.0";
 *                            the driver prints it without the function), in MIG GPU instance
 *                            GI, compute instance CI when given;
 *   "storm BUS XID N\n"      the same report N times;
 *   any other line           one record with that message.
 * Each record has the kernel's facility, level 4 (warning, as the driver's printk), the next
 * sequence number of @root (from 1, across restarts of xpud) and the time now.
 */
void test_kmsg_inject(const char *root, const char *line);
/* Writes @len bytes into @root's dev/kmsg as they are (records made by hand, garbled ones). */
void test_kmsg_write(const char *root, const char *bytes, size_t len);
/* SIGTERM, waits, and returns xpud's exit status (-1 if killed by a signal). Fails the test when
 * XPU_TEST_WRAPPER's tool found errors. */
int test_xpud_stop(struct test_xpud *x);
/* Stops xpud if running, removes the tree, frees. */
void test_xpud_free(struct test_xpud *x);
/* Whether the xpud log contains @needle. */
bool test_xpud_log_contains(const struct test_xpud *x, const char *needle);
/* How often @needle occurs in the xpud log. */
unsigned test_xpud_log_count(const struct test_xpud *x, const char *needle);

/* Sends a kernel-format uevent to xpud's test uevent socket. */
void test_send_uevent(const struct test_xpud *x, const char *action, const char *devpath,
		      const char *subsystem);
/* The same with one more KEY=VALUE entry (@extra: "WEDGED=rebind"; NULL: none). */
void test_send_uevent_with(const struct test_xpud *x, const char *action, const char *devpath,
			   const char *subsystem, const char *extra);

/* GET /v1/<what>[/<id>], asserting 200; the document (the caller unrefs it). */
json_t *test_get(const struct test_xpud *x, const char *what, const char *id);
/* The string member @key of @o, and the property @key of device document @d (borrowed; NULL). */
const char *test_jstr(json_t *o, const char *key);
const char *test_jprop(json_t *d, const char *key);
/* Whether the document @d (a device, slice or grant) lists @node among its device_nodes. */
bool test_has_node(json_t *d, const char *node);
/* Replaces the file @rel of the tree @root with @text at once (a driver changing an attribute). */
void test_put_file(const char *root, const char *rel, const char *text);

/* Writes @text into @root/@rel in place (a watched file keeps its inode), making its
 * directories. */
void test_write_in_place(const char *root, const char *rel, const char *text);

/* What `xpud --simulate list` prints (asserting it exits 0); the caller frees it. */
char *test_simulate_list_output(void);

/* Waits (10 s at most) for device @id's health state to be @state; returns its health object
 * (the caller unrefs it), or fails the test. */
json_t *test_wait_health(const struct test_xpud *x, const char *id, const char *state);

/* GET/POST through libxpu; returns the status, fails the test on socket errors. */
int test_request(const struct test_xpud *x, const char *method, const char *path, json_t **ret);
/* How many allocations GET /v1/allocations lists (asserting it answers 200). */
size_t test_n_allocations(const struct test_xpud *x);

/*
 * A request with a JSON body given as text (NULL: none). Returns the HTTP status, or -errno
 * when the request failed (xpud died, say): never fails the test itself.
 */
int test_request_body(const struct test_xpud *x, const char *method, const char *path,
		      const char *body, json_t **ret);

/* Waits for xpud to exit by itself (killed, crashed) within @timeout_ms: its wait status, or
 * -1 on timeout. */
int test_xpud_wait_exit(struct test_xpud *x, int timeout_ms);

/* Takes the tree away from @x, so that test_xpud_free() leaves it for a second xpud. */
char *test_xpud_take_root(struct test_xpud *x);

/*
 * Runs XPUCTL_BIN with --socket and @args (NULL-terminated). Returns its exit status and its
 * stdout (malloc'd) in *ret_out when not NULL.
 */
int test_xpuctl(const char *socket, const char *const *args, char **ret_out);

/* Writes a whole buffer to a new connection on @socket and returns what comes back until EOF
 * or @timeout_ms (malloc'd, NUL-terminated). */
char *test_raw_exchange(const char *socket, const void *data, size_t len, int timeout_ms);

/* A /v1/events stream read line by line. */
struct test_stream;
/* Connects and sends the request; fails the test on error. */
struct test_stream *test_stream_open(const char *socket_path);
/*
 * Reads until a line contains every needle (NULL-terminated), consuming it and the lines
 * before. Returns the milliseconds it took, or -1 on timeout or end of stream.
 */
long long test_stream_wait(struct test_stream *s, const char *const *needles, int timeout_ms);
/* The same, returning the matching event as a new JSON document; NULL on timeout or end. */
json_t *test_stream_next(struct test_stream *s, const char *const *needles, int timeout_ms);
void test_stream_close(struct test_stream *s);

/* The entry of @device in GET /v1/plan (a new reference); fails the test without one. */
json_t *test_plan_entry(const struct test_xpud *x, const char *device);
/* Waits (10 s at most) until @device is offered as @layout ("mig=3g.40gb,3g.40gb") with
 * nothing pending and no repartition in progress. */
void test_wait_settled(const struct test_xpud *x, const char *device, const char *layout);
/* @field ("total", "free", ...) of @resource in GET /v1/capacity; -1 when it is not listed. */
json_int_t test_capacity(const struct test_xpud *x, const char *resource, const char *field);
/* The ids of @device's slices in GET /v1/slices, sorted (a strv; NULL for none), and their
 * resources in the same order in *ret_resources when not NULL. */
char **test_device_slices(const struct test_xpud *x, const char *device, char ***ret_resources);
/* Sets @key of the GPU @bus_id in <root>/run/fake-nvml.json to @value (taken): "errors",
 * "hang_ms", ... Before xpud starts: the fake reads it at nvmlInit. */
void test_fake_nvml_set(const char *root, const char *bus_id, const char *key, json_t *value);

/* Makes every NVML call of the fake (init included; not nvmlErrorString, nvmlShutdown) answer
 * NVML_ERROR_<@name> ("DRIVER_NOT_LOADED", ...), as after the driver was unloaded, until called
 * with NULL: the file "<@description>.driver-error" (tests/fakes/README.md). Takes effect at the
 * next call, also in a running process. */
void test_fake_nvml_driver_error(const char *description, const char *name);
/* What this process logs (its stderr) from test_stderr_capture() on: test_stderr_captured()
 * gives it back (malloc'd) and restores stderr. One capture at a time. */
void test_stderr_capture(void);
char *test_stderr_captured(void);
/* The samples of tests/fixtures/kmsg/xid-lines.txt, one at a time: the record (unescaped: not
 * NUL-terminated, valid until the next call) and what it must give ("bad-record", "not-xid",
 * "bad-xid" or "pci=... xid=..."). */
struct test_xid_sample {
	unsigned lineno;
	const char *record;
	size_t len;
	const char *expected;
};
struct test_xid_lines;
struct test_xid_lines *test_xid_lines_open(void);
bool test_xid_lines_next(struct test_xid_lines *t, struct test_xid_sample *ret);
void test_xid_lines_close(struct test_xid_lines *t);
/* The next sequence number test_kmsg_inject() gives a record of @root (taken). */
unsigned long long test_kmsg_next_seq(const char *root);
/* Writes one fault line (tests/fakes/README.md, "Faults": "query segv", "init leak 1", ...) to
 * "<@description>.fault", or removes the file with NULL. Both fakes read it at every call, also
 * in a running process. */
void test_fake_fault(const char *description, const char *line);

/* What became of a function run in a forked child (test_child_run()). */
struct test_child {
	int status; /* waitpid()'s */
	bool hung;  /* still running at the deadline: killed with SIGKILL */
	char *out, *err, *result; /* its stdout, stderr and result pipe (NUL added), or NULL */
	size_t out_len, err_len, result_len;
};
/* A child's exit status when it could not set itself up. */
#define TEST_CHILD_BROKEN 99
/*
 * Forks a child that runs @fn(@userdata, result_fd) with its stdout and stderr on pipes, and
 * exits 0 when @fn returns. @fn may write anything to result_fd; it must not use cmocka (a failed
 * assertion would run the parent's tests on in the child). The parent keeps what comes through
 * the three pipes until they close, or until @timeout_ms have passed: then a child still running
 * is killed (hung). The test process survives whatever the child does.
 */
void test_child_run(void (*fn)(void *userdata, int result_fd), void *userdata, int timeout_ms,
		    struct test_child *ret);
void test_child_free(struct test_child *c);
/* What a child of test_child_run_calls() reports of each call that returned. */
struct test_call_record {
	int call;	   /* the caller's number for it */
	int ret;	   /* what it returned */
	long rss_grew_kib; /* how much the child's RSS (VmRSS) grew during the call */
};
/*
 * test_child_run() of a child that runs @call(@userdata, c) for each c of @calls in order and
 * reports each that returned. The number of those; *ret_records (in ret->result) their records.
 */
size_t test_child_run_calls(int (*call)(void *userdata, int which), void *userdata,
			    const int *calls, size_t n_calls, int timeout_ms,
			    struct test_child *ret, const struct test_call_record **ret_records);
/* Asserts that @text (NULL: none) is @n whole lines, each starting with @prefix and containing
 * @needle. */
void test_assert_lines(const char *text, size_t n, const char *prefix, const char *needle);
/* A call a test of the fake libraries' faults makes: its name, and the kind of call a fault line
 * names it by ("init", "query", "apply", "processes"; NULL: none). */
struct test_fault_call {
	const char *name;
	const char *where;
};
/*
 * Which calls each kind names, for the fake library whose calls @call(@userdata, i) makes (i:
 * 0..@n_calls - 1, described by @calls[i]; 0 is success), in forked children: under
 * "<where> exit", a child that makes every call not of that kind, in order, sees each answer 0;
 * one that makes a call of that kind exits with status 3. Leaves no fault file.
 */
void test_fake_fault_kinds(const char *description, int (*call)(void *userdata, int which),
			   void *userdata, const struct test_fault_call *calls, size_t n_calls);
/*
 * Every fault at each call @at[0..@n_at - 1] (by its kind), in forked children: "segv" killed by
 * SIGSEGV, or under ASan its SEGV report and then SIGABRT (abort_on_error=1 in ASAN_OPTIONS, as
 * ctest sets it) or exit status 1; "abort" SIGABRT; "exit" status 3; "hang" still running after
 * 300 ms; "leak" the call answers 0 and the child's RSS grew by more than 900 MiB during it;
 * "garbage" the call answers 0 after 64 KiB on stdout, a protocol end line among them. Leaves no
 * fault file.
 */
void test_fake_fault_fates(const char *description, int (*call)(void *userdata, int which),
			   void *userdata, const struct test_fault_call *calls, const int *at,
			   size_t n_at);
/* Milliseconds on CLOCK_MONOTONIC. */
long long test_now_ms(void);
