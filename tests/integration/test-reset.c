// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Resets when idle, with the real xpud: a GPU whose PCI function stops answering (its config
 * space reads all ones) or that reports XID 79 is reset through sysfs when reset-when-idle covers
 * it and nothing is allocated on it, goes on probation and comes back healthy; with the option
 * off nothing is reset; an allocated GPU waits for its release; a reset that cannot be done is
 * logged with its reason and never retried in a loop; NVML's processes on a GPU hold its reset.
 * A device that left unhealthy and came back well was reset meanwhile: probation.
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
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

#define AMD "0000:0c:00.0" /* an MI300X of the mi300x node: the generic PCI backend's */
#define H100 "0000:2a:00.0" /* an H100 of the hgx-h100 node: the NVIDIA backend's */

/* Writes @len bytes to @path below the tree, replacing what is there. */
static void put(const char *root, const char *path, const void *data, size_t len)
{
	char p[4096];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, path);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* The function's sysfs reset file holds @expected: "" until xpud writes "1". */
static void assert_reset_file(const char *root, const char *addr, const char *expected)
{
	char p[4096];
	char *text = NULL;

	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/%s/reset", root, addr);
	assert_int_equal(read_attr_at(AT_FDCWD, p, 0, &text), 0);
	assert_string_equal(text, expected);
	free(text);
}

static void make_reset_file(const char *root, const char *addr)
{
	char p[128];

	snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/reset", addr);
	put(root, p, "", 0);
}

/* The function stops answering on the bus, or answers again. */
static void set_config_space(const char *root, const char *addr, bool dead)
{
	const unsigned char cfg[4] = { 0x02, 0x10, 0xa1, 0x74 };
	const unsigned char ones[4] = { 0xff, 0xff, 0xff, 0xff };
	char p[128];

	snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/config", addr);
	put(root, p, dead ? ones : cfg, 4);
}

static char *with_config(const char *node, const char *yaml)
{
	char *root = test_fixture_new(node), conf[4096];

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	put(root, "xpud.yaml", yaml, strlen(yaml));
	return root;
}

static struct test_xpud *start(char *root)
{
	char conf[4096];
	const char *args[] = { "--config", conf, NULL };

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	return test_xpud_start(root, args);
}

static struct test_stream *subscribe(const struct test_xpud *x)
{
	struct test_stream *s = test_stream_open(x->socket);

	assert_true(test_stream_wait(s, (const char *const[]){ "\"subscribed\"", NULL }, 10000) >=
		    0);
	return s;
}

static long long wait_for(struct test_stream *s, const char *addr, const char *what)
{
	char id[64];

	/* Generous: probes, resets and the fake NVML's delays run under the sanitizers on a busy
	 * machine; only a change that never comes should reach it. */
	snprintf(id, sizeof(id), "\"device_id\":\"%s\"", addr);
	return test_stream_wait(s, (const char *const[]){ "\"health-changed\"", id, what, NULL },
				30000);
}

static const char *health_of(const struct test_xpud *x, const char *id, char *buf, size_t size)
{
	json_t *d = NULL, *h;
	char path[128];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	assert_int_equal(test_request(x, "GET", path, &d), 200);
	h = json_object_get(d, "health");
	snprintf(buf, size, "%s %s", json_string_value(json_object_get(h, "state")),
		 json_string_value(json_object_get(h, "reason")) ?: "");
	json_decref(d);
	return buf;
}

/* A while later, @addr was not reset; stops xpud. */
static void expect_untouched(struct test_xpud *x, struct test_stream *s, const char *addr)
{
	usleep(500 * 1000);
	assert_reset_file(x->root, addr, "");
	assert_false(test_xpud_log_contains(x, "resetting it"));
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

#define PROBING "health-interval: 100ms\nhealth-suspect-after: 2\nhealth-probation: 0\n"

/* xpud on the mi300x node under @yaml (with the function's reset file when @resettable), and
 * its event stream. */
static struct test_xpud *start_amd(const char *yaml, bool resettable, struct test_stream **ret_s)
{
	char *root = with_config("mi300x", yaml);
	struct test_xpud *x;

	if (resettable)
		make_reset_file(root, AMD);
	x = start(root);
	*ret_s = subscribe(x);
	return x;
}

/* The function stops answering on the bus; waits until xpud says it is unhealthy. */
static void kill_function(struct test_xpud *x, struct test_stream *s)
{
	set_config_space(x->root, AMD, true);
	assert_true(wait_for(s, AMD, "\"to\":\"unhealthy\"") >= 0);
}

/*
 * A function that stops answering: unhealthy after two failed probes, reset once, on probation;
 * it still does not answer, so it relapses, and is not reset again (back-off). Once it answers,
 * healthy.
 */
static void test_probe_failure_reset(void **state)
{
	struct test_stream *s;
	struct test_xpud *x = start_amd(PROBING "reset-when-idle: [gpu]\n", true, &s);
	char buf[512];

	kill_function(x, s);
	assert_true(wait_for(s, AMD, "\"signal\":\"reset\"") >= 0);
	assert_reset_file(x->root, AMD, "1");
	assert_true(test_xpud_log_contains(x, "Device " AMD ": resetting it (not responding on "
					      "the PCIe bus"));
	assert_true(test_xpud_log_contains(x, "Device " AMD " was reset"));

	/* still dead: back to unhealthy, and no second reset for a good while */
	assert_true(wait_for(s, AMD, "\"to\":\"unhealthy\"") >= 0);
	usleep(600 * 1000);
	assert_int_equal(test_xpud_log_count(x, "resetting it"), 1);
	assert_non_null(strstr(health_of(x, AMD, buf, sizeof(buf)), "unhealthy not responding"));

	/* answers again: healthy (no probation configured) */
	set_config_space(x->root, AMD, false);
	assert_true(wait_for(s, AMD, "\"state\":\"healthy\"") >= 0);
	assert_string_equal(health_of(x, AMD, buf, sizeof(buf)), "healthy ");
	assert_int_equal(test_xpud_log_count(x, "resetting it"), 1);
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* A dead function under @yaml: unhealthy, and neither reset nor its reset file touched. */
static void expect_no_reset(const char *yaml)
{
	struct test_stream *s;
	struct test_xpud *x = start_amd(yaml, true, &s);

	kill_function(x, s);
	expect_untouched(x, s, AMD);
}

/* The option off (the default): the device stays unhealthy and its reset file untouched. */
static void test_off_by_default(void **state)
{
	expect_no_reset(PROBING);
}

/* reset-when-idle names other kinds only: a GPU is not reset. */
static void test_other_kind(void **state)
{
	expect_no_reset(PROBING "reset-when-idle: [accel, fpga]\n");
}

/* Allocated: no reset while the slice is held; its release lets the reset happen. */
static void test_waits_for_release(void **state)
{
	struct test_stream *s;
	struct test_xpud *x = start_amd(PROBING "reset-when-idle: all\n", true, &s);
	json_t *doc = NULL;
	char path[128];

	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"amd.com/gpu\", "
					   "\"device\": \"" AMD "\"}",
					   &doc),
			 201);
	snprintf(path, sizeof(path), "/v1/allocations/%s",
		 json_string_value(json_object_get(doc, "id")));
	json_decref(doc);

	kill_function(x, s);
	usleep(500 * 1000);
	assert_reset_file(x->root, AMD, "");
	assert_true(test_xpud_log_contains(x, "Device " AMD " needs a reset"));
	assert_int_equal(test_xpud_log_count(x, "needs a reset"), 1);

	assert_int_equal(test_request_body(x, "DELETE", path, NULL, NULL), 200);
	assert_true(wait_for(s, AMD, "\"signal\":\"reset\"") >= 0);
	assert_reset_file(x->root, AMD, "1");
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* The kernel offers no reset for the function: logged with the reason, tried once, unhealthy. */
static void test_reset_fails(void **state)
{
	struct test_stream *s;
	struct test_xpud *x = start_amd(PROBING "reset-when-idle: [gpu]\n", false, &s);
	char buf[512];

	kill_function(x, s);
	usleep(800 * 1000);
	assert_true(test_xpud_log_contains(x, "Device " AMD " could not be reset: the kernel has "
					      "no reset method for PCI function " AMD));
	assert_int_equal(test_xpud_log_count(x, "resetting it"), 1);
	assert_non_null(strstr(health_of(x, AMD, buf, sizeof(buf)), "unhealthy not responding"));
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * Reset observed: a function that was unhealthy leaves (hot-unplugged, as a reset that takes it
 * off the bus does) and comes back well. It was reset meanwhile, so it goes through probation,
 * with the reason it had, instead of being trusted at once like a new device.
 */
static void test_return_goes_through_probation(void **state)
{
	struct test_stream *s;
	struct test_xpud *x = start_amd("health-interval: 100ms\nhealth-probation: 1h\n", false, &s);
	char *err = NULL, buf[512];

	kill_function(x, s);
	assert_int_equal(fixture_remove_pci(x->root, AMD), 0);
	test_send_uevent(x, "remove", "/devices/pci0000:00/" AMD, "pci");
	assert_true(test_stream_wait(s, (const char *const[]){ "\"device-removed\"", AMD, NULL },
				     10000) >= 0);
	assert_int_equal(fixture_build(sim_node_find("mi300x")->json, x->root, &err), 0);
	test_send_uevent(x, "add", "/devices/pci0000:00/" AMD, "pci");
	assert_true(test_stream_wait(s, (const char *const[]){ "\"device-added\"", AMD, NULL },
				     10000) >= 0);
	assert_true(wait_for(s, AMD, "\"to\":\"probation\",\"signal\":\"reset\"") >= 0);
	assert_string_equal(health_of(x, AMD, buf, sizeof(buf)),
			    "unhealthy on probation: not responding on the PCIe bus (config space "
			    "reads all ones)");
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* The hgx-h100 node (its XIDs in its kernel log, dev/kmsg), reset files for its GPU, and
 * @processes on it (NVML taking @hang_ms to list them). */
static struct test_xpud *start_nvidia(const char *yaml, unsigned processes, unsigned hang_ms)
{
	char *root = with_config("hgx-h100", yaml), conf[4096], desc[4096];
	const char *args[] = { "--config", conf, NULL };
	json_t *doc, *g;
	size_t i;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	make_reset_file(root, H100);
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	doc = json_load_file(desc, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "gpus"), i, g)
		if (strcmp(json_string_value(json_object_get(g, "bus_id")), H100) == 0) {
			json_object_set_new(g, "processes", json_integer(processes));
			if (hang_ms)
				json_object_set_new(
					g, "hang_ms",
					json_pack("{s:i}", "nvmlDeviceGetComputeRunningProcesses_v3",
						  (int)hang_ms));
		}
	assert_int_equal(json_dump_file(doc, desc, JSON_COMPACT), 0);
	json_decref(doc);
	return test_xpud_start_nvml(root, args, NULL);
}

/* XID 79 (fallen off the bus: reset-gpu) on an idle GPU: reset, probation, healthy. */
static void test_xid_reset(void **state)
{
	struct test_xpud *x = start_nvidia(PROBING "reset-when-idle: [gpu]\n", 0, 0);
	struct test_stream *s = subscribe(x);
	char buf[512];

	test_kmsg_inject(x->root, "xid " H100 " 79\n");
	assert_true(wait_for(s, H100, "XID 79 (GPU has fallen off the bus): reset-gpu") >= 0);
	assert_true(wait_for(s, H100, "\"signal\":\"reset\"") >= 0);
	assert_reset_file(x->root, H100, "1");
	/* the reset cleared what the event said: the GPU answers, and is healthy again */
	assert_true(wait_for(s, H100, "\"state\":\"healthy\"") >= 0);
	assert_string_equal(health_of(x, H100, buf, sizeof(buf)), "healthy ");
	assert_int_equal(test_xpud_log_count(x, "resetting it"), 1);

	/* an application's XID asks for no reset */
	test_kmsg_inject(x->root, "xid " H100 " 13\n");
	usleep(400 * 1000);
	assert_int_equal(test_xpud_log_count(x, "resetting it"), 1);
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* A process NVML lists on the GPU holds the reset: refused with the reason, GPU unhealthy. */
static void test_xid_reset_refused_with_processes(void **state)
{
	struct test_xpud *x = start_nvidia(PROBING "reset-when-idle: [gpu]\n", 1, 0);
	struct test_stream *s = subscribe(x);
	char buf[512];

	test_kmsg_inject(x->root, "xid " H100 " 79\n");
	assert_true(wait_for(s, H100, "XID 79") >= 0);
	usleep(600 * 1000);
	assert_true(test_xpud_log_contains(x, "Device " H100 " could not be reset: NVML lists 1 "
					      "process using GPU " H100));
	assert_int_equal(test_xpud_log_count(x, "resetting it"), 1);
	assert_reset_file(x->root, H100, "");
	assert_non_null(strstr(health_of(x, H100, buf, sizeof(buf)), "unhealthy XID 79"));
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* A reset that takes its time (NVML slow to list the GPU's processes) runs off the loop: the
 * API answers and grants other GPUs meanwhile. */
static void test_reset_off_the_loop(void **state)
{
	struct test_xpud *x = start_nvidia(PROBING "reset-when-idle: [gpu]\n", 0, 1500);
	struct test_stream *s = subscribe(x);
	long long deadline;

	test_kmsg_inject(x->root, "xid " H100 " 79\n");
	assert_true(wait_for(s, H100, "XID 79") >= 0);
	deadline = test_now_ms() + 5000;
	while (!test_xpud_log_contains(x, "resetting it") && test_now_ms() < deadline)
		usleep(10 * 1000);
	assert_true(test_xpud_log_contains(x, "resetting it"));
	/* while NVML holds the reset's process check, another GPU is granted */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/gpu\", \"device\": "
					   "\"0000:18:00.0\"}",
					   NULL),
			 201);
	assert_false(test_xpud_log_contains(x, "was reset"));
	assert_true(wait_for(s, H100, "\"signal\":\"reset\"") >= 0);
	assert_true(test_xpud_log_contains(x, "was reset"));
	assert_reset_file(x->root, H100, "1");
	test_stream_close(s);
	test_xpud_free(x);
}

/* Without reset-when-idle, XID 79 leaves the GPU unhealthy and untouched. */
static void test_xid_no_reset_when_off(void **state)
{
	struct test_xpud *x = start_nvidia(PROBING, 0, 0);
	struct test_stream *s = subscribe(x);

	test_kmsg_inject(x->root, "xid " H100 " 79\n");
	assert_true(wait_for(s, H100, "XID 79") >= 0);
	expect_untouched(x, s, H100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_failure_reset),
		cmocka_unit_test(test_off_by_default),
		cmocka_unit_test(test_other_kind),
		cmocka_unit_test(test_waits_for_release),
		cmocka_unit_test(test_reset_fails),
		cmocka_unit_test(test_return_goes_through_probation),
		cmocka_unit_test(test_xid_reset),
		cmocka_unit_test(test_xid_reset_refused_with_processes),
		cmocka_unit_test(test_xid_no_reset_when_off),
		cmocka_unit_test(test_reset_off_the_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
