// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The files xpud writes for Kubernetes, on the HGX fixture: CDI specs (content, the names a
 * grant gives resolving in them, an update after a reload that changes the plan, no rewrite
 * without a change, the stale spec of a kind without slices removed, validity against the CDI
 * schema of tests/k8s/) and the NFD feature file (labels, the expiry line).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "testutil.h"

struct kube_node {
	struct test_xpud *x;
	char cdi[4096], nfd[4096], conf[4096];
};

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* xpud on the HGX fixture with NFD's directory present, and the CDI dir with a stale FPGA spec
 * left from an earlier run (@stale) or not created yet (xpud creates it). */
static void start(struct kube_node *k, const char *config, bool stale_spec)
{
	char *root = test_fixture_new("hgx-h100"), stale[4200];

	snprintf(k->cdi, sizeof(k->cdi), "%s/var/run/cdi-test", root);
	snprintf(k->nfd, sizeof(k->nfd), "%s/features.d", root);
	snprintf(k->conf, sizeof(k->conf), "%s/xpud.yaml", root);
	assert_int_equal(mkdir(k->nfd, 0755), 0);
	if (stale_spec) {
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", k->cdi);
		assert_int_equal(system(cmd), 0);
		snprintf(stale, sizeof(stale), "%s/xpu.dev-fpga.json", k->cdi);
		write_file(stale, "{}\n");
	}
	write_file(k->conf, config);
	k->x = test_xpud_start_nvml(
	    root,
	    (const char *[]){"--config", k->conf, "--cdi-dir", k->cdi, "--nfd-dir", k->nfd, NULL},
	    NULL);
}

static json_t *load_spec(struct kube_node *k, const char *file)
{
	char path[4200];
	json_error_t err;
	json_t *doc;

	snprintf(path, sizeof(path), "%s/%s", k->cdi, file);
	doc = json_load_file(path, 0, &err);
	if (!doc)
		fail_msg("%s: %s", path, err.text);
	return doc;
}

static bool exists(const char *dir, const char *file)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

static ino_t inode_of(const char *dir, const char *file)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

/* Whether "kind=name" names a device of one of the specs in the CDI dir. */
static bool resolves(struct kube_node *k, const char *qualified)
{
	static const char *const files[] = {"xpu.dev-gpu.json", "xpu.dev-accel.json",
					    "xpu.dev-fpga.json"};
	const char *eq = strchr(qualified, '=');
	bool found = false;

	assert_non_null(eq);
	for (size_t f = 0; f < ELEMENTSOF(files) && !found; f++) {
		json_t *spec, *d;
		size_t i;

		if (!exists(k->cdi, files[f]))
			continue;
		spec = load_spec(k, files[f]);
		if (strncmp(json_string_value(json_object_get(spec, "kind")), qualified,
			    (size_t)(eq - qualified)) == 0)
			json_array_foreach (json_object_get(spec, "devices"), i, d)
				found |=
				    streq(json_string_value(json_object_get(d, "name")), eq + 1);
		json_decref(spec);
	}
	return found;
}

static size_t n_devices(struct kube_node *k, const char *file)
{
	json_t *spec = load_spec(k, file);
	size_t n = json_array_size(json_object_get(spec, "devices"));

	json_decref(spec);
	return n;
}

static bool has_device(struct kube_node *k, const char *file, const char *name)
{
	char q[256];

	snprintf(q, sizeof(q), "xpu.dev/gpu=%s", name);
	return strcmp(file, "xpu.dev-gpu.json") == 0 && resolves(k, q);
}

/* How many GPU spec devices have @part in their name. */
static size_t n_named(struct kube_node *k, const char *part)
{
	json_t *spec = load_spec(k, "xpu.dev-gpu.json"), *d;
	size_t i, n = 0;

	json_array_foreach (json_object_get(spec, "devices"), i, d)
		n += strstr(json_string_value(json_object_get(d, "name")), part) != NULL;
	json_decref(spec);
	return n;
}

/* Grants two slices of @resource; asserts that the names the grant gives resolve in the
 * written specs. */
static void grant_resolves(struct kube_node *k, const char *resource)
{
	char body[256];

	json_t *doc = NULL, *v;
	size_t i;

	snprintf(body, sizeof(body), "{\"resource\": \"%s\", \"count\": 2}", resource);
	assert_int_equal(test_request_body(k->x, "POST", "/v1/allocations", body, &doc), 201);
	assert_int_equal(json_array_size(json_object_get(doc, "cdi_devices")), 2);
	json_array_foreach (json_object_get(doc, "cdi_devices"), i, v)
		assert_true(resolves(k, json_string_value(v)));
	json_decref(doc);
}

static void test_cdi_specs(void **state)
{
	struct kube_node k;
	json_t *spec, *d;
	ino_t before;
	size_t i;

	start(&k, "log-level: debug\n", true);
	/* seven whole GPUs and the seven MIG instances of the eighth; no accelerators, no FPGAs */
	assert_true(exists(k.cdi, "xpu.dev-gpu.json"));
	assert_false(exists(k.cdi, "xpu.dev-accel.json"));
	assert_false(exists(k.cdi, "xpu.dev-fpga.json")); /* the stale one is gone */
	spec = load_spec(&k, "xpu.dev-gpu.json");
	/* the lowest version that has names starting with a digit and host paths: a runtime that
	 * knows no later one (Debian 12's podman) reads it */
	assert_string_equal(json_string_value(json_object_get(spec, "cdiVersion")), "0.5.0");
	assert_string_equal(json_string_value(json_object_get(spec, "kind")), "xpu.dev/gpu");
	assert_int_equal(json_array_size(json_object_get(spec, "devices")), 14);
	json_array_foreach (json_object_get(spec, "devices"), i, d) {
		json_t *edits = json_object_get(d, "containerEdits"), *n;
		size_t j;

		assert_true(json_array_size(json_object_get(edits, "deviceNodes")) > 0);
		assert_true(json_array_size(json_object_get(edits, "env")) > 0);
		assert_null(json_object_get(edits, "hooks"));
		/* the nodes of the fixture's tree, where a runtime on this machine finds them */
		json_array_foreach (json_object_get(edits, "deviceNodes"), j, n) {
			const char *host = json_string_value(json_object_get(n, "hostPath"));
			char want[8192];

			snprintf(want, sizeof(want), "%s%s", k.x->root,
				 json_string_value(json_object_get(n, "path")));
			assert_non_null(host);
			assert_string_equal(host, want);
			assert_int_equal(access(want, F_OK), 0);
		}
	}
	json_decref(spec);
	assert_true(has_device(&k, "xpu.dev-gpu.json", "0000-18-00.0"));

	grant_resolves(&k, "nvidia.com/gpu");

	/* nothing changed for CDI: the file is not written again */
	before = inode_of(k.cdi, "xpu.dev-gpu.json");
	assert_int_equal(test_request_body(k.x, "POST", "/v1/rescan", NULL, NULL), 200);
	assert_int_equal(inode_of(k.cdi, "xpu.dev-gpu.json"), before);

	/* a new plan: idle whole GPUs become two replicas each; the busy ones stay whole */
	write_file(k.conf, "partitions:\n  - match: {vendor: nvidia}\n    replicas: 2\n");
	assert_int_equal(test_request_body(k.x, "POST", "/v1/reload", NULL, NULL), 200);
	/* written before the loop sleeps again: the answer may leave a moment earlier */
	for (int t = 0; t < 200 && inode_of(k.cdi, "xpu.dev-gpu.json") == before; t++)
		usleep(10 * 1000);
	assert_true(inode_of(k.cdi, "xpu.dev-gpu.json") != before);
	assert_int_equal(n_devices(&k, "xpu.dev-gpu.json"), 5 * 2 + 2 + 7);
	assert_int_equal(n_named(&k, "-replica-"), 5 * 2);
	grant_resolves(&k, "nvidia.com/gpu.shared");
	assert_false(test_xpud_log_contains(k.x, "Failed to write the CDI specs"));
	assert_int_equal(test_xpud_stop(k.x), 0);
	/* the specs stay after xpud stops: containers may still be starting with them */
	assert_true(exists(k.cdi, "xpu.dev-gpu.json"));
	test_xpud_free(k.x);
}

/* Runs tests/k8s/validate-cdi.py on @files; its exit status (77: no python3-jsonschema). */
static int validate(const char *const *files)
{
	const char *tests = test_env("XPU_TESTS_DIR");
	char cmd[16384];
	int n, status;

	n = snprintf(cmd, sizeof(cmd),
		     "/usr/bin/python3 %s/k8s/validate-cdi.py %s/k8s/cdi-schema.json", tests,
		     tests);
	for (; *files; files++)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", *files);
	status = system(cmd);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_cdi_schema(void **state)
{
	struct kube_node k;
	char path[4200], bad[4200];
	json_t *spec;

	start(&k, "partitions:\n  - match: {pci: \"0000:18:00.0\"}\n    replicas: 3\n", false);
	snprintf(path, sizeof(path), "%s/xpu.dev-gpu.json", k.cdi);
	if (validate((const char *[]){path, NULL}) == 77) {
		test_xpud_free(k.x);
		skip();
	}
	assert_int_equal(validate((const char *[]){path, NULL}), 0);
	assert_true(has_device(&k, "xpu.dev-gpu.json", "0000-18-00.0-replica-2"));

	/* the check can fail: a spec with a name CDI refuses is reported */
	spec = load_spec(&k, "xpu.dev-gpu.json");
	json_object_set_new(json_array_get(json_object_get(spec, "devices"), 0), "name",
			    json_string("0000:18:00.0/replica-0"));
	snprintf(bad, sizeof(bad), "%s/bad.json", k.cdi);
	assert_int_equal(json_dump_file(spec, bad, 0), 0);
	json_decref(spec);
	assert_int_equal(validate((const char *[]){bad, NULL}), 1);
	test_xpud_free(k.x);
}

static void test_nfd_labels(void **state)
{
	struct kube_node k;
	char path[4200], line[512], *text = NULL;
	size_t len = 0;
	struct tm tm = {};
	time_t expiry, now = time(NULL);
	FILE *f;

	start(&k, "log-level: info\n", false);
	snprintf(path, sizeof(path), "%s/xpud", k.nfd);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(strptime(line, "# +expiry-time=%Y-%m-%dT%H:%M:%SZ", &tm));
	expiry = timegm(&tm);
	/* an hour ahead */
	assert_true(expiry > now + 3500 && expiry < now + 3700);
	fseek(f, 0, SEEK_SET);
	assert_true(getdelim(&text, &len, '\0', f) > 0);
	fclose(f);
	assert_non_null(strstr(text, "\nnvidia.com/gpu.present=true\n"));
	assert_non_null(strstr(text, "\nnvidia.com/gpu.count=8\n"));
	assert_non_null(strstr(text, "\nnvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3\n"));
	assert_non_null(strstr(text, "\nnvidia.com/gpu.memory=81559\n"));
	assert_non_null(strstr(text, "\nnvidia.com/mig.capable=true\n"));
	assert_non_null(strstr(text, "\nnvidia.com/gpu.compute.major=9\n"));
	assert_non_null(strstr(text, "\nxpu.dev/nvidia.present=true\n"));
	assert_non_null(strstr(text, "\nxpu.dev/gpu.count=8\n"));
	assert_non_null(strstr(text, "\nxpu.dev/numa-nodes=2\n"));
	free(text);
	assert_true(test_xpud_log_contains(k.x, "Node labels written to"));
	test_xpud_free(k.x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cdi_specs),
	    cmocka_unit_test(test_cdi_schema),
	    cmocka_unit_test(test_nfd_labels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
