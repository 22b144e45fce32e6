// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The CDI specs with a real runtime: Debian's podman and runc start a busybox container given
 * the CDI names of a grant on a simulated node whose device nodes are real character devices
 * the test creates, and the container sees exactly the granted nodes and the grant's
 * environment. Needs root; skipped only where podman is not installed.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "testutil.h"

/* What every container has, granted or not. */
static const char *const standard_nodes[] = {
    "/dev/null",    "/dev/zero", "/dev/full",	 "/dev/random",
    "/dev/urandom", "/dev/tty",	 "/dev/console", "/dev/pts/ptmx",
};

static unsigned next_minor;

/* The fixture's /dev holds empty files: each becomes a character device of its own. */
static int make_node(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type != FTW_F)
		return 0;
	if (unlink(path) < 0 || mknod(path, S_IFCHR | 0666, makedev(195, next_minor++)) < 0)
		return -errno;
	return 0;
}

static bool is_standard(const char *path)
{
	for (size_t i = 0; i < ELEMENTSOF(standard_nodes); i++)
		if (streq(path, standard_nodes[i]))
			return true;
	return false;
}

static bool in_array(json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach (a, i, v)
		if (streq(json_string_value(v), s))
			return true;
	return false;
}

/* Runs podman-cdi.sh with the grant's CDI names; its output (malloc'd). */
static char *run_container(const char *root, json_t *cdi_devices)
{
	char cmd[8192], *out = NULL;
	size_t len = 0, i;
	json_t *v;
	FILE *p;
	int n;

	n = snprintf(cmd, sizeof(cmd),
		     "%s/integration/podman-cdi.sh '%s/podman' '%s/cdi' /bin/busybox",
		     test_env("XPU_TESTS_DIR"), root, root);
	json_array_foreach (cdi_devices, i, v)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", json_string_value(v));
	assert_true(n < (int)sizeof(cmd));
	p = popen(cmd, "r");
	assert_non_null(p);
	for (;;) {
		char buf[4096];
		size_t got = fread(buf, 1, sizeof(buf), p);

		if (got == 0)
			break;
		out = realloc(out, len + got + 1);
		assert_non_null(out);
		memcpy(out + len, buf, got);
		len += got;
	}
	if (pclose(p) != 0)
		fail_msg("%s failed (see its messages above); it printed:\n%s", cmd, out ?: "");
	if (!out)
		out = strdup("");
	else
		out[len] = '\0';
	return out;
}

static void test_grant_in_container(void **state)
{
	char *root, cdi[4096], cmd[4200];
	struct test_xpud *x;
	json_t *grant = NULL, *nodes;
	char *out, *line, *save = NULL;
	bool in_env = false;
	size_t seen = 0, n_env = 0;

	(void)state;
	if (system("command -v podman >/dev/null 2>&1") != 0) {
		fprintf(stderr, "podman is not installed (tests/deps.sh test installs it); "
				"skipping.\n");
		exit(77);
	}
	if (geteuid() != 0)
		fail_msg("this test runs containers with podman and makes device nodes: run it "
			 "as root");
	root = test_fixture_new("hgx-h100");
	snprintf(cdi, sizeof(cdi), "%s/dev", root);
	assert_int_equal(nftw(cdi, make_node, 16, FTW_PHYS), 0);
	snprintf(cdi, sizeof(cdi), "%s/cdi", root);
	x = test_xpud_start_nvml(root, (const char *[]){"--cdi-dir", cdi, NULL}, NULL);

	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/gpu\", \"count\": 1}",
					   &grant),
			 201);
	nodes = json_object_get(grant, "device_nodes");
	assert_true(json_array_size(nodes) > 0);
	out = run_container(x->root, json_object_get(grant, "cdi_devices"));

	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char path[4096], host[8300];
		unsigned major, minor;
		struct stat st;

		if (streq(line, "--")) {
			in_env = true;
			continue;
		}
		if (in_env) {
			char *eq = strchr(line, '=');
			json_t *want;

			if (!eq)
				continue;
			*eq = '\0';
			want = json_object_get(json_object_get(grant, "env"), line);
			if (want) {
				assert_string_equal(eq + 1, json_string_value(want));
				n_env++;
			}
			continue;
		}
		assert_int_equal(sscanf(line, "%4095s %x %x", path, &major, &minor), 3);
		if (is_standard(path))
			continue;
		/* nothing but the granted nodes, each the node the test made for it */
		if (!in_array(nodes, path))
			fail_msg("the container has %s, which the grant does not list", path);
		snprintf(host, sizeof(host), "%s%s", x->root, path);
		assert_int_equal(stat(host, &st), 0);
		assert_int_equal(major, major(st.st_rdev));
		assert_int_equal(minor, minor(st.st_rdev));
		seen++;
	}
	assert_true(in_env);
	assert_int_equal(seen, json_array_size(nodes));
	/* every variable of the grant, with the grant's value */
	assert_int_equal(n_env, json_object_size(json_object_get(grant, "env")));
	free(out);
	json_decref(grant);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/podman'", x->root);
	assert_int_equal(system(cmd), 0);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grant_in_container),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
