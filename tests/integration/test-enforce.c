// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Enforcement for real, as root: the real xpud confines a grant's owner in a child of a test
 * cgroup, and a process in it opens the granted node and is refused the other. The nodes are
 * character devices the test makes with a major number no driver has: opening one gives ENXIO
 * when the filter lets it through and EPERM when it denies it, without hardware. Both ways of
 * confining devices (the cgroup v2 device program, the v1 devices controller where mounted),
 * the release (while the owner runs: its devices revoked), and the faults: a root xpud cannot
 * make children in, BPF not permitted, an owner that exits before it is moved. Skips (77) when not root or BPF is not permitted.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "services/enforce.h"
#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"

#define RES "xpu.dev/google-coral-edge-tpu"

/* What the whole file shares: the test cgroups (removed at the end) and the nodes' major. */
static struct {
	char *cg;    /* a cgroup2 directory of this test */
	char *cg_v1; /* a v1 devices directory of this test, or NULL where none is mounted */
	unsigned major;
} env;

static int bpf_call(int cmd, union bpf_attr *attr)
{
	long r = syscall(__NR_bpf, cmd, attr, sizeof(*attr));

	return r < 0 ? -errno : (int)r;
}

/* Whether this process may load a cgroup device program (root, BPF not locked down). */
static bool bpf_permitted(void)
{
	_cleanup_free_ char *why = NULL;
	int fd = enforce_bpf_load(NULL, 0, &why);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Whether program @id still exists. */
static bool bpf_program_exists(uint32_t id)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_id = id;
	fd = bpf_call(BPF_PROG_GET_FD_BY_ID, &attr);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* A character major that /proc/devices does not list, in the local/experimental ranges. */
static unsigned free_major(void)
{
	_cleanup_free_ char *devices = NULL;
	char needle[16];

	assert_int_equal(read_attr_at(AT_FDCWD, "/proc/devices", 65536, &devices), 0);
	for (unsigned m = 240; m <= 254; m++) {
		snprintf(needle, sizeof(needle), "\n%3u ", m);
		if (!strstr(devices, needle))
			return m;
	}
	return 0;
}

static int setup(void **state)
{
	_cleanup_free_ char *mountinfo = NULL;
	struct cgroup_mounts m = {};

	if (geteuid() != 0 || !bpf_permitted()) {
		print_message("needs root and BPF; skipping\n");
		exit(77);
	}
	assert_int_equal(read_attr_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, &mountinfo), 0);
	assert_int_equal(cgroup_mounts_parse(mountinfo, &m), 0);
	env.major = free_major();
	if (!m.unified || !env.major) {
		print_message("no cgroup2 mount or no free major; skipping\n");
		exit(77);
	}
	assert_true(asprintf(&env.cg, "%s/xpu-test-enforce-%d", m.unified, (int)getpid()) > 0);
	if (mkdir(env.cg, 0755) < 0) {
		print_message("cannot make %s (%m); skipping\n", env.cg);
		exit(77);
	}
	if (m.devices) {
		assert_true(asprintf(&env.cg_v1, "%s/xpu-test-enforce-%d", m.devices,
				     (int)getpid()) > 0);
		assert_int_equal(mkdir(env.cg_v1, 0755), 0);
	}
	cgroup_mounts_done(&m);
	return 0;
}

/* Removes @dir and the children a failed test left (their processes are gone with xpud). */
static void remove_tree(const char *dir)
{
	_cleanup_free_ char *cmd = NULL;

	if (dir && asprintf(&cmd, "find %s -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null",
			    dir) > 0)
		(void)system(cmd);
	if (dir)
		(void)rmdir(dir);
}

static int teardown(void **state)
{
	remove_tree(env.cg_v1);
	remove_tree(env.cg);
	free(env.cg);
	free(env.cg_v1);
	return 0;
}

/* The coral fixture with its two apex nodes made real (@major:0 and :1), and xpud.yaml with
 * @config. */
static char *fixture(const char *config, char **ret_conf)
{
	char *root = test_fixture_new("coral-dual"), path[4096];
	FILE *f;

	for (unsigned i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/dev/apex_%u", root, i);
		(void)unlink(path);
		assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(env.major, i)), 0);
	}
	assert_true(asprintf(ret_conf, "%s/xpud.yaml", root) > 0);
	f = fopen(*ret_conf, "we");
	assert_non_null(f);
	fputs(config, f);
	assert_int_equal(fclose(f), 0);
	return root;
}

static struct test_xpud *start(const char *devices, const char *cgroup_root)
{
	_cleanup_free_ char *conf = NULL, *text = NULL;
	char *root;

	assert_true(asprintf(&text, "enforce:\n  cgroup-root: %s\n%s%s%s  devices: %s\n",
			     cgroup_root, env.cg_v1 ? "  devices-v1-root: " : "",
			     env.cg_v1 ?: "", env.cg_v1 ? "\n" : "", devices) > 0);
	root = fixture(text, &conf);
	return test_xpud_start(root, (const char *[]){ "--config", conf, NULL });
}

/* A process that, each time it is told to, opens two nodes and reports each errno (0: opened). */
struct opener {
	pid_t pid;
	int go;	     /* write a byte: it opens */
	int results; /* two ints come back */
};

static struct opener opener_start(const char *a, const char *b)
{
	int go[2], res[2];
	struct opener o;

	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(res, O_CLOEXEC), 0);
	o.pid = fork();
	assert_true(o.pid >= 0);
	if (o.pid == 0) {
		char c;
		int e[2];

		close(go[1]);
		close(res[0]);
		while (read(go[0], &c, 1) == 1) { /* until the pipe closes */
			for (int i = 0; i < 2; i++) {
				int fd = open(i ? b : a, O_RDWR | O_CLOEXEC);

				e[i] = fd < 0 ? errno : 0;
				if (fd >= 0)
					close(fd);
			}
			if (write(res[1], e, sizeof(e)) != sizeof(e))
				_exit(1);
		}
		_exit(0);
	}
	close(go[0]);
	close(res[1]);
	o.go = go[1];
	o.results = res[0];
	return o;
}

static void opener_open(struct opener *o, int ret[2])
{
	assert_int_equal(write(o->go, "x", 1), 1);
	assert_int_equal(read(o->results, ret, 2 * sizeof(int)), 2 * sizeof(int));
}

static void opener_end(struct opener *o)
{
	int status;

	close(o->go);
	close(o->results);
	assert_int_equal(waitpid(o->pid, &status, 0), o->pid);
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Waits (10 s at most) until @path is gone. */
static bool wait_gone(const char *path)
{
	for (long long end = test_now_ms() + 10000; test_now_ms() < end;) {
		if (access(path, F_OK) < 0)
			return true;
		(void)poll(NULL, 0, 20);
	}
	return false;
}

/* An opener of apex_0 (granted) and apex_1, and the grant of apex_0 with enforce made for it. */
static struct opener grant_to_opener(struct test_xpud *x, json_t **ret_doc)
{
	char granted[4096], denied[4096], body[256];
	struct opener o;

	snprintf(granted, sizeof(granted), "%s/dev/apex_0", x->root);
	snprintf(denied, sizeof(denied), "%s/dev/apex_1", x->root);
	o = opener_start(granted, denied);
	snprintf(body, sizeof(body),
		 "{\"resource\": \"" RES "\", \"count\": 1, \"device\": \"0000:03:00.0\", "
		 "\"owner\": {\"pid\": %d}, \"enforce\": true}",
		 (int)o.pid);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, ret_doc), 201);
	return o;
}

/*
 * Grants one TPU to an opener with enforce: the granted node opens (ENXIO: no driver), the
 * other is refused (EPERM); GET shows what is in force; the owner's exit removes it all.
 */
static void grant_and_check(const char *devices)
{
	struct test_xpud *x = start(devices, env.cg);
	char path[256], *dir = NULL;
	_cleanup_free_ char *dir_v1 = NULL;
	json_t *doc = NULL, *one = NULL, *progs;
	uint32_t prog = 0;
	struct opener o = grant_to_opener(x, &doc);
	int e[2];

	assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "device_nodes"),
							      0)),
			    "/dev/apex_0");
	assert_string_equal(str(json_object_get(doc, "enforced"), "devices"), devices);
	assert_true(asprintf(&dir, "%s/%s", env.cg, str(doc, "id")) > 0);
	assert_string_equal(str(doc, "cgroup"), dir);

	/* the owner is in its cgroup, and confined */
	opener_open(&o, e);
	assert_int_equal(e[0], ENXIO);
	assert_int_equal(e[1], EPERM);

	/* read back from the cgroup */
	snprintf(path, sizeof(path), "/v1/allocations/%s", str(doc, "id"));
	assert_int_equal(test_request(x, "GET", path, &one), 200);
	assert_string_equal(str(json_object_get(one, "enforced"), "devices"), devices);
	assert_string_equal(str(json_object_get(one, "enforced"), "memory"), "none");
	progs = json_object_get(json_object_get(one, "devices"), "bpf_programs");
	if (streq(devices, "bpf")) {
		assert_int_equal(json_array_size(progs), 1);
		prog = (uint32_t)json_integer_value(json_array_get(progs, 0));
		assert_true(bpf_program_exists(prog));
	} else {
		char rule[32];
		json_t *rules = json_object_get(json_object_get(one, "devices"), "v1_rules");
		bool found = false;
		size_t i;
		json_t *r;

		assert_true(asprintf(&dir_v1, "%s/%s", env.cg_v1, str(doc, "id")) > 0);
		assert_string_equal(str(one, "cgroup_v1"), dir_v1);
		snprintf(rule, sizeof(rule), "c %u:0 rw", env.major);
		json_array_foreach(rules, i, r)
			found |= streq(json_string_value(r), rule);
		assert_true(found);
		/* the other node is not among them */
		snprintf(rule, sizeof(rule), "c %u:1", env.major);
		json_array_foreach(rules, i, r)
			assert_null(strstr(json_string_value(r), rule));
	}
	json_decref(one);

	/* the owner exits: the allocation, the cgroups and the program go */
	opener_end(&o);
	assert_true(wait_gone(dir));
	if (dir_v1)
		assert_true(wait_gone(dir_v1));
	assert_int_equal(test_n_allocations(x), 0);
	for (long long end = test_now_ms() + 10000; prog && bpf_program_exists(prog) &&
						    test_now_ms() < end;)
		(void)poll(NULL, 0, 20);
	assert_false(prog && bpf_program_exists(prog));
	assert_true(test_xpud_log_contains(x, "removed."));
	free(dir);
	json_decref(doc);
	test_xpud_free(x);
}

static void test_bpf(void **state)
{
	grant_and_check("bpf");
}

/*
 * Released while the owner runs: its cgroup stays (it has a process) and keeps only the
 * pseudo-devices, so the released node is refused too; removed at xpud's next start once empty.
 */
static void release_revokes(const char *devices)
{
	struct test_xpud *x = start(devices, env.cg);
	char path[256], *dir = NULL;
	json_t *doc = NULL, *got = NULL;
	struct opener o = grant_to_opener(x, &doc);
	int e[2];

	opener_open(&o, e);
	assert_int_equal(e[0], ENXIO);
	assert_int_equal(e[1], EPERM);
	snprintf(path, sizeof(path), "/v1/allocations/%s", str(doc, "id"));
	assert_int_equal(test_request(x, "DELETE", path, &got), 200);
	opener_open(&o, e);
	assert_int_equal(e[0], EPERM); /* revoked */
	assert_int_equal(e[1], EPERM);
	assert_true(test_xpud_log_contains(x, "its devices are revoked"));
	assert_true(asprintf(&dir, "%s/%s", env.cg, str(doc, "id")) > 0);
	assert_int_equal(access(dir, F_OK), 0);
	opener_end(&o);
	/* the next start removes it, now empty */
	{
		char *root = test_xpud_take_root(x);
		_cleanup_free_ char *conf = NULL;

		test_xpud_free(x);
		assert_true(asprintf(&conf, "%s/xpud.yaml", root) > 0);
		x = test_xpud_start(root, (const char *[]){ "--config", conf, NULL });
	}
	assert_true(wait_gone(dir));
	free(dir);
	json_decref(doc);
	json_decref(got);
	test_xpud_free(x);
}

static void test_release_revokes_bpf(void **state)
{
	release_revokes("bpf");
}

static void test_release_revokes_v1(void **state)
{
	if (!env.cg_v1)
		skip();
	release_revokes("devices-v1");
}

static void test_devices_v1(void **state)
{
	if (!env.cg_v1)
		skip();
	grant_and_check("devices-v1");
}

/* GET /v1/version says how this host is confined. */
static void test_version(void **state)
{
	struct test_xpud *x = start("bpf", env.cg);
	json_t *doc = NULL, *e;

	assert_int_equal(test_request(x, "GET", "/v1/version", &doc), 200);
	e = json_object_get(doc, "enforcement");
	assert_string_equal(str(e, "devices"), "bpf");
	assert_string_equal(str(e, "cgroup_root"), env.cg);
	assert_string_equal(str(e, "hierarchy"), env.cg_v1 ? "hybrid" : "unified");
	assert_true(test_xpud_log_contains(x, "Enforcement: cgroup hierarchy"));
	json_decref(doc);
	test_xpud_free(x);
}

/* Nothing in @env.cg but what was there, and no allocation. */
static void assert_nothing_left(struct test_xpud *x)
{
	_cleanup_free_ char *cmd = NULL;

	assert_int_equal(test_n_allocations(x), 0);
	assert_true(asprintf(&cmd, "test -z \"$(find %s %s -mindepth 1 -type d)\"", env.cg,
			     env.cg_v1 ?: "") > 0);
	assert_int_equal(system(cmd), 0);
}

/* A grant whose owner is @pid with enforce: its status and error message. */
static int grant_enforced(struct test_xpud *x, pid_t pid, char **ret_message)
{
	char body[256];
	json_t *doc = NULL;
	int status;

	snprintf(body, sizeof(body),
		 "{\"resource\": \"" RES "\", \"owner\": {\"pid\": %d}, \"enforce\": true}",
		 (int)pid);
	status = test_request_body(x, "POST", "/v1/allocations", body, &doc);
	*ret_message = status == 201 ? NULL : strdup(str(doc, "message") ?: "");
	json_decref(doc);
	return status;
}

/* A cgroup root where no child can be made, and one that is no cgroup at all. */
static void test_root_not_usable(void **state)
{
	_cleanup_free_ char *limit = NULL, *msg = NULL, *notcg = NULL;
	struct test_xpud *x;
	struct opener o = opener_start("/dev/null", "/dev/null");

	/* cgroup.max.descendants 0: the kernel refuses children, as in a root not delegated */
	assert_true(asprintf(&limit, "%s/cgroup.max.descendants", env.cg) > 0);
	assert_int_equal(write_attr_at(AT_FDCWD, limit, "0"), 0);
	x = start("bpf", env.cg);
	assert_int_equal(grant_enforced(x, o.pid, &msg), 500);
	assert_non_null(strstr(msg, "cannot make cgroup"));
	assert_non_null(strstr(msg, "delegated to xpud"));
	assert_int_equal(write_attr_at(AT_FDCWD, limit, "max"), 0);
	assert_nothing_left(x);
	test_xpud_free(x);
	msg = mfree(msg);

	/* a directory that is not a cgroup: nothing can be confined there, said at start */
	notcg = strdup("/tmp/xpu-test-notcg-XXXXXX");
	assert_non_null(mkdtemp(notcg));
	x = start("bpf", notcg);
	assert_true(test_xpud_log_contains(x, "is not a cgroup2 directory"));
	assert_int_equal(grant_enforced(x, o.pid, &msg), 501);
	assert_non_null(strstr(msg, "enforcement is not available"));
	assert_nothing_left(x);
	test_xpud_free(x);
	(void)rmdir(notcg);
	opener_end(&o);
}

/*
 * A memory limit: refused where the memory controller is not enabled for the root's children
 * (this hybrid development machine), else set and read back from memory.max.
 */
static void test_memory_limit(void **state)
{
	_cleanup_free_ char *controllers = NULL, *path = NULL, *subtree = NULL;
	struct opener o = opener_start("/dev/null", "/dev/null");
	struct test_xpud *x = start("bpf", env.cg);
	char body[256], *parent = strdup(env.cg);
	json_t *doc = NULL;
	bool enabled;

	assert_non_null(parent);
	*strrchr(parent, '/') = 0;
	assert_true(asprintf(&path, "%s/cgroup.controllers", parent) > 0);
	assert_int_equal(read_attr_at(AT_FDCWD, path, 4096, &controllers), 0);
	enabled = strstr(controllers, "memory") != NULL;
	if (enabled) {
		assert_true(asprintf(&subtree, "%s/cgroup.subtree_control", env.cg) > 0);
		enabled = write_attr_at(AT_FDCWD, subtree, "+memory") >= 0;
	}
	snprintf(body, sizeof(body),
		 "{\"resource\": \"" RES "\", \"owner\": {\"pid\": %d}, "
		 "\"enforce\": {\"memory_max\": 268435456}}",
		 (int)o.pid);
	if (enabled) {
		assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 201);
		assert_string_equal(str(json_object_get(doc, "limits"), "memory.max"), "268435456");
		assert_string_equal(str(json_object_get(doc, "enforced"), "memory"), "memory.max");
	} else {
		assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 501);
		assert_non_null(strstr(str(doc, "message"), "memory.max is not there: the controller "
							    "is not enabled"));
		assert_nothing_left(x);
	}
	json_decref(doc);
	opener_end(&o);
	if (enabled) {
		for (long long end = test_now_ms() + 10000;
		     test_n_allocations(x) && test_now_ms() < end;)
			(void)poll(NULL, 0, 20);
		assert_nothing_left(x);
		(void)write_attr_at(AT_FDCWD, subtree, "-memory");
	}
	free(parent);
	test_xpud_free(x);
}

/* An owner that exited (not reaped yet) when it is moved: refused, nothing left. */
static void test_owner_exits(void **state)
{
	_cleanup_free_ char *msg = NULL;
	struct test_xpud *x = start("bpf", env.cg);
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	/* a zombie: /proc still lists it, the kernel takes its PID into cgroup.procs and
	 * moves nothing */
	for (long long end = test_now_ms() + 5000; test_now_ms() < end;) {
		_cleanup_free_ char *stat = NULL;
		char p[64];

		snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
		if (read_attr_at(AT_FDCWD, p, 4096, &stat) >= 0 && strstr(stat, ") Z "))
			break;
		(void)poll(NULL, 0, 10);
	}
	status = grant_enforced(x, pid, &msg);
	assert_int_equal(status, 400);
	assert_non_null(strstr(msg, "exited before it could be moved into its cgroup"));
	assert_nothing_left(x);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	test_xpud_free(x);
}

/* BPF not permitted (a seccomp filter on bpf(), inherited by xpud): refused, nothing left.
 * Last: the filter stays on this process. */
static void test_bpf_not_permitted(void **state)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_bpf, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = ELEMENTSOF(filter), .filter = filter };
	_cleanup_free_ char *msg = NULL;
	struct opener o = opener_start("/dev/null", "/dev/null");
	struct test_xpud *x;

	assert_int_equal(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	assert_int_equal(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
	x = start("bpf", env.cg);
	assert_int_equal(grant_enforced(x, o.pid, &msg), 403);
	assert_non_null(strstr(msg, "BPF is not permitted"));
	assert_nothing_left(x);
	test_xpud_free(x);
	opener_end(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_bpf),
		cmocka_unit_test(test_devices_v1),
		cmocka_unit_test(test_release_revokes_bpf),
		cmocka_unit_test(test_release_revokes_v1),
		cmocka_unit_test(test_root_not_usable),
		cmocka_unit_test(test_owner_exits),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test(test_bpf_not_permitted),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
