// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the DRM backend learns of an amdgpu render node through libdrm_amdgpu
 * (agent/backends/drm-amdgpu-lib.c), against the fake library (tests/fakes/fake-drm-amdgpu.c) on
 * a fake host root whose render nodes are plain files.
 *
 * The library is loaded once per process and its outcome kept, so the tests of a load that fails
 * run in forked children, before this process loads the fake (they come first in main()).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
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

#include "backends/drm-internal.h"
#include "shared/host.h"
#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

#define MI300X_VRAM 205822885888ULL /* 191.7 GiB: what amdgpu says of an MI300X */

static const char description[] =
	"{\n"
	"  \"renderD128\": {\"vram_total\": 205822885888, \"vram_used\": 297795584,\n"
	"                  \"vis_vram_total\": 205822885888,\n"
	"                  \"marketing_name\": \"AMD Instinct MI300X\", \"fail\": null},\n"
	"  \"renderD129\": {\"vram_total\": 17163091968, \"vram_used\": 1048576,\n"
	"                  \"vis_vram_total\": 268435456},\n"
	"  \"renderD130\": {\"vram_total\": 68702699520, \"vram_used\": 4096,\n"
	"                  \"vis_vram_total\": 536870912,\n"
	"                  \"marketing_name\": \"AMD Instinct MI210\", \"fail\": \"info\"},\n"
	"  \"renderD131\": {\"vram_total\": 68702699520, \"marketing_name\": \"AMD Instinct MI210\",\n"
	"                  \"fail\": \"memory\"},\n"
	"  \"renderD132\": {\"vram_total\": 68702699520, \"fail\": \"init\"}\n"
	"}\n";

/* renderD133 exists in /dev but not in the description; renderD200 exists in neither. */
static const char *const nodes[] = { "renderD128", "renderD129", "renderD130",
				     "renderD131", "renderD132", "renderD133" };

static char *root;
static struct xpu_host *host;
static char library[PATH_MAX];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	char path[PATH_MAX];
	const char *tmp = getenv("TMPDIR");

	snprintf(path, sizeof(path), "%s/xpu-amdgpu-XXXXXX", isempty(tmp) ? "/tmp" : tmp);
	assert_non_null(mkdtemp(path));
	root = strdup(path);
	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/sys", root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/dev", root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/dev/dri", root);
	assert_int_equal(mkdir(path, 0755), 0);
	for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
		snprintf(path, sizeof(path), "%s/dev/dri/%s", root, nodes[i]);
		write_file(path, ""); /* the fake never touches the node itself */
	}
	snprintf(path, sizeof(path), "%s/amdgpu.json", root);
	write_file(path, description);
	assert_int_equal(setenv("XPU_FAKE_AMDGPU", path, 1), 0);
	snprintf(library, sizeof(library), "%s/libdrm_amdgpu.so.1",
		 test_env("XPU_FAKE_NVML_DIR"));
	assert_int_equal(setenv("XPU_AMDGPU_LIBRARY", library, 1), 0);
	assert_int_equal(host_open(root, &host), 0);
	assert_false(host->is_real);
	return 0;
}

static int teardown(void **state)
{
	host_free(host);
	assert_int_equal(fixture_destroy(root), 0);
	free(root);
	return 0;
}

/* The lowest free file descriptor: the same before and after a query that closes what it opens. */
static int next_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/* An error: the code, a reason containing @needle, and *ret untouched. */
static void assert_error(const char *devname, int expected, const char *needle)
{
	struct drm_amdgpu_answer info = { .vram_total = 42 };
	_cleanup_free_ char *reason = NULL;
	int r;

	r = drm_amdgpu_query(host, devname, &info, &reason);
	if (r != expected)
		fail_msg("%s: %d (%s), expected %d", devname, r, reason ?: "no reason", expected);
	assert_non_null(reason);
	if (!strstr(reason, needle))
		fail_msg("%s: the reason '%s' does not say '%s'", devname, reason, needle);
	assert_null(strchr(reason, '\n'));
	assert_int_equal(info.vram_total, 42);
	assert_null(info.marketing_name);
}

static void test_answers(void **state)
{
	_cleanup_(drm_amdgpu_answer_done) struct drm_amdgpu_answer a = {}, b = {};
	char *reason = NULL;
	int fd = next_fd();

	assert_int_equal(drm_amdgpu_query(host, "dri/renderD128", &a, &reason), 0);
	assert_null(reason);
	assert_int_equal(a.vram_total, MI300X_VRAM);
	assert_int_equal(a.vram_used, 297795584);
	assert_int_equal(a.vis_vram_total, MI300X_VRAM);
	assert_string_equal(a.marketing_name, "AMD Instinct MI300X");
	/* another node answers for itself; a library that knows no name gives none */
	assert_int_equal(drm_amdgpu_query(host, "dri/renderD129", &b, &reason), 0);
	assert_int_equal(b.vram_total, 17163091968ULL);
	assert_int_equal(b.vram_used, 1048576);
	assert_int_equal(b.vis_vram_total, 268435456);
	assert_null(b.marketing_name);
	/* the node is closed again (the device deinitialized: LeakSanitizer sees the fake's) */
	assert_int_equal(next_fd(), fd);
}

/* A kernel without AMDGPU_INFO_MEMORY: the heap queries answer instead. */
static void test_heap_fallback(void **state)
{
	_cleanup_(drm_amdgpu_answer_done) struct drm_amdgpu_answer info = {};

	assert_int_equal(drm_amdgpu_query(host, "dri/renderD130", &info, NULL), 0);
	assert_int_equal(info.vram_total, 68702699520ULL);
	assert_int_equal(info.vram_used, 4096);
	assert_int_equal(info.vis_vram_total, 536870912);
	assert_string_equal(info.marketing_name, "AMD Instinct MI210");
}

/* No memory query answers: a partial answer, the name without the sizes. */
static void test_memory_fails(void **state)
{
	_cleanup_(drm_amdgpu_answer_done) struct drm_amdgpu_answer info = { .vram_total = 42 };
	char *reason = NULL;

	assert_int_equal(drm_amdgpu_query(host, "dri/renderD131", &info, &reason), 0);
	assert_null(reason);
	assert_int_equal(info.vram_total, 0);
	assert_int_equal(info.vram_used, 0);
	assert_int_equal(info.vis_vram_total, 0);
	assert_string_equal(info.marketing_name, "AMD Instinct MI210");
}

static void test_driver_refuses(void **state)
{
	int fd = next_fd();

	assert_error("dri/renderD132", -EIO, "amdgpu_device_initialize on /dev/dri/renderD132");
	/* a node the driver does not know as amdgpu's */
	assert_error("dri/renderD133", -EIO, "/dev/dri/renderD133 failed: No such device");
	assert_int_equal(next_fd(), fd);
}

static void test_node_missing(void **state)
{
	assert_error("dri/renderD200", -ENOENT, "cannot open /dev/dri/renderD200");
}

static void test_fake_root_needs_variable(void **state)
{
	assert_int_equal(unsetenv("XPU_AMDGPU_LIBRARY"), 0);
	assert_error("dri/renderD128", -ENOENT,
		     "a simulated host root uses no libdrm_amdgpu unless XPU_AMDGPU_LIBRARY names one");
	assert_int_equal(setenv("XPU_AMDGPU_LIBRARY", library, 1), 0);
}

/* In a child: the query of renderD128, twice, as "<r> <reason>" lines on @result_fd. */
static void child_query(void *userdata, int result_fd)
{
	for (int i = 0; i < 2; i++) {
		struct drm_amdgpu_answer info = {};
		char *reason = NULL;
		int r;

		if (setenv("XPU_AMDGPU_LIBRARY", userdata, 1) < 0)
			_exit(TEST_CHILD_BROKEN);
		r = drm_amdgpu_query(host, "dri/renderD128", &info, &reason);
		dprintf(result_fd, "%d %s\n", r, reason ?: "-");
		drm_amdgpu_answer_done(&info);
		free(reason);
		/* the first outcome is kept, even once the variable names the fake */
		userdata = library;
	}
}

static void assert_child_load_fails(const char *path, int expected, const char *needle)
{
	struct test_child c;
	char first[64], line[PATH_MAX + 128];
	size_t n;

	test_child_run(child_query, (void *)path, 30000, &c);
	assert_false(c.hung);
	assert_true(WIFEXITED(c.status));
	assert_int_equal(WEXITSTATUS(c.status), 0);
	assert_non_null(c.result);
	snprintf(first, sizeof(first), "%d ", expected);
	n = strcspn(c.result, "\n");
	snprintf(line, sizeof(line), "%.*s", (int)n, c.result);
	if (strncmp(line, first, strlen(first)) != 0 || !strstr(line, needle))
		fail_msg("%s: '%s', expected %d and '%s'", path, line, expected, needle);
	/* the second call, with the fake named, gives the same answer */
	assert_memory_equal(c.result, c.result + n + 1, n + 1);
	assert_int_equal(c.result_len, 2 * (n + 1));
	test_child_free(&c);
}

static void test_library_missing(void **state)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/no-such/libdrm_amdgpu.so.1", root);
	assert_child_load_fails(path, -ENOENT, path);
}

static void test_library_lacks_symbol(void **state)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/libnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR"));
	assert_child_load_fails(path, -ENXIO, "lacks the symbol amdgpu_device_initialize");
}

static void *thread_query(void *userdata)
{
	struct drm_amdgpu_answer info = {};
	int r;

	r = drm_amdgpu_query(host, "dri/renderD128", &info, NULL);
	if (r == 0 && (info.vram_total != MI300X_VRAM || !info.marketing_name))
		r = -EBADMSG;
	drm_amdgpu_answer_done(&info);
	return (void *)(intptr_t)r;
}

/* In a child that has not loaded the library: eight threads race to its first load. */
static void child_threads(void *userdata, int result_fd)
{
	pthread_t t[8];

	for (size_t i = 0; i < ELEMENTSOF(t); i++)
		if (pthread_create(&t[i], NULL, thread_query, NULL) != 0)
			_exit(TEST_CHILD_BROKEN);
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		void *r;

		if (pthread_join(t[i], &r) != 0)
			_exit(TEST_CHILD_BROKEN);
		dprintf(result_fd, "%d\n", (int)(intptr_t)r);
	}
}

static void test_threads_load_once(void **state)
{
	struct test_child c;

	test_child_run(child_threads, NULL, 30000, &c);
	assert_false(c.hung);
	assert_true(WIFEXITED(c.status));
	assert_int_equal(WEXITSTATUS(c.status), 0);
	assert_string_equal(c.result, "0\n0\n0\n0\n0\n0\n0\n0\n");
	test_child_free(&c);
}

/* A typo in the fake's description fails the device, loudly, rather than answering 0. */
static void test_fake_rejects_typo(void **state)
{
	char path[PATH_MAX];
	_cleanup_free_ char *err = NULL;

	snprintf(path, sizeof(path), "%s/typo.json", root);
	write_file(path, "{\"renderD128\": {\"vram_totl\": 1}}");
	assert_int_equal(setenv("XPU_FAKE_AMDGPU", path, 1), 0);
	test_stderr_capture();
	assert_error("dri/renderD128", -EIO, "Invalid argument");
	err = test_stderr_captured();
	snprintf(path, sizeof(path), "%s/amdgpu.json", root);
	assert_int_equal(setenv("XPU_FAKE_AMDGPU", path, 1), 0);
	assert_non_null(strstr(err, "fake-drm-amdgpu: "));
	assert_non_null(strstr(err, "typo.json: renderD128.vram_totl"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* first: they need a process that has not loaded the library yet */
		cmocka_unit_test(test_library_missing),
		cmocka_unit_test(test_library_lacks_symbol),
		cmocka_unit_test(test_threads_load_once),
		cmocka_unit_test(test_fake_root_needs_variable),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_heap_fallback),
		cmocka_unit_test(test_memory_fails),
		cmocka_unit_test(test_driver_refuses),
		cmocka_unit_test(test_node_missing),
		cmocka_unit_test(test_fake_rejects_typo),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
