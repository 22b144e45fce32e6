// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The XRT backend. For real, on Debian's XRT in software emulation (libxrt_swemu.so.2 with
 * XCL_EMULATION_MODE=sw_emu and an emconfig.json this test writes): emulated cards appear with
 * their shells, DDR sizes and banks; an emconfig.json that declares none, a broken one and no XRT
 * at all each give a clear backend status. Against the fake shim (tests/fakes/fake-xrt.c), for
 * what emulation cannot do: a card on the alveo-u250 node's PCI slot merged with its PCI record,
 * sensors, a loaded xclbin, and an XRT that crashes or hangs in xclProbe (the helper killed at
 * its deadline) while the rest of the inventory stays.
 */
#include <dlfcn.h>
#include <errno.h>
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

#include "testutil.h"

#define U250_SHELL "xilinx_u250_gen3x16_xdma_shell_4_1"
#define U50_SHELL "xilinx_u50_gen3x16_xdma_5_202210_1"

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A backend's reason, which must be there. */
static const char *reason(json_t *b)
{
	const char *s = str(b, "reason");

	assert_non_null(s);
	return s;
}

static const char *prop(json_t *dev, const char *key)
{
	return str(json_object_get(dev, "properties"), key);
}

/* The device @id, or NULL (404). */
static json_t *device(const struct test_xpud *x, const char *id)
{
	char path[128];
	json_t *doc = NULL;
	int status;

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	status = test_request(x, "GET", path, &doc);
	if (status == 404) {
		json_decref(doc);
		return NULL;
	}
	assert_int_equal(status, 200);
	return doc;
}

/* /v1/backends' entry of the XRT backend (a new reference). */
static json_t *xrt_backend(const struct test_xpud *x)
{
	json_t *doc = NULL, *b, *found = NULL;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/backends", &doc), 200);
	json_array_foreach(json_object_get(doc, "backends"), i, b)
		if (strcmp(str(b, "name"), "xrt") == 0)
			found = json_incref(b);
	json_decref(doc);
	assert_non_null(found);
	return found;
}

/* The wormhole node's card, which no XRT answer may take away. */
static void assert_wormhole(const struct test_xpud *x)
{
	json_t *d = device(x, "0000:41:00.0");

	assert_non_null(d);
	json_decref(d);
}

static size_t count_kind(const struct test_xpud *x, const char *kind)
{
	json_t *doc = NULL, *d;
	size_t i, n = 0;

	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	json_array_foreach(json_object_get(doc, "devices"), i, d)
		n += strcmp(str(d, "kind"), kind) == 0;
	json_decref(doc);
	return n;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Whether Debian's XRT emulation library can be loaded here (in a child: XRT stays out of the
 * test). */
static bool swemu_installed(void)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		/* loading it reads the emulation's configuration: none, and quiet */
		unsetenv("XCL_EMULATION_MODE");
		unsetenv("EMCONFIG_PATH");
		if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
			_exit(2);
		_exit(dlopen("libxrt_swemu.so.2", RTLD_LAZY | RTLD_LOCAL) ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* xpud on the node @node with XRT's software emulation of the emconfig.json @emconfig (NULL:
 * none written). */
static struct test_xpud *start_swemu(const char *node, const char *emconfig)
{
	char *root = test_fixture_new(node), dir[4096];

	if (!swemu_installed()) {
		print_message("libxrt_swemu.so.2 is not installed (Debian: libxrt1): skipped\n");
		exit(77);
	}
	snprintf(dir, sizeof(dir), "%s/emu", root);
	assert_int_equal(mkdir(dir, 0755), 0);
	if (emconfig)
		write_file(dir, "emconfig.json", emconfig);
	setenv("XCL_EMULATION_MODE", "sw_emu", 1);
	setenv("EMCONFIG_PATH", dir, 1);
	unsetenv("XPU_XRT_LIBRARY");
	unsetenv("XPU_FAKE_XRT");
	return test_xpud_start(root, NULL);
}

static const char two_cards[] =
	"{\"Version\": {\"FileVersion\": \"2.0\"},\n"
	" \"Platform\": {\"Boards\": [{\"NumBoards\": \"1\", \"Devices\": [\n"
	"   {\"Name\": \"" U250_SHELL "\",\n"
	"    \"DdrBanks\": [{\"Size\": \"16GB\"}, {\"Size\": \"16GB\"}, {\"Size\": \"16GB\"},\n"
	"                 {\"Size\": \"16GB\"}]},\n"
	"   {\"Name\": \"" U50_SHELL "\", \"DdrBanks\": [{\"Size\": \"8GB\"}]}]}]}}\n";

static void test_swemu_two_cards(void **state)
{
	struct test_xpud *x = start_swemu("wormhole", two_cards);
	json_t *b = xrt_backend(x), *d;

	assert_true(json_is_true(json_object_get(b, "available")));
	assert_true(json_is_null(json_object_get(b, "reason")));
	json_decref(b);

	assert_int_equal(count_kind(x, "fpga"), 2);
	d = device(x, "xrt-0");
	assert_non_null(d);
	assert_string_equal(str(d, "kind"), "fpga");
	assert_string_equal(str(d, "vendor"), "xilinx");
	assert_string_equal(str(d, "backend"), "xrt");
	assert_string_equal(str(d, "model"), U250_SHELL);
	assert_true(json_integer_value(json_object_get(d, "memory_bytes")) == 64LL << 30);
	assert_string_equal(prop(d, "ddr_banks"), "4");
	assert_string_equal(prop(d, "emulation"), "sw_emu");
	assert_string_equal(str(d, "resource"), "xilinx.com/fpga-" U250_SHELL);
	json_decref(d);
	d = device(x, "xrt-1");
	assert_non_null(d);
	assert_string_equal(str(d, "model"), U50_SHELL);
	assert_true(json_integer_value(json_object_get(d, "memory_bytes")) == 8LL << 30);
	assert_string_equal(prop(d, "ddr_banks"), "1");
	json_decref(d);
	/* XRT's made-up default device is never asked for */
	assert_null(device(x, "xrt-2"));
	/* the rest of the node */
	assert_wormhole(x);
	/* each card is a slice of its shell's resource */
	assert_int_equal(test_capacity(x, "xilinx.com/fpga-" U250_SHELL, "total"), 1);
	test_xpud_free(x);
}

static void test_swemu_no_cards(void **state)
{
	struct test_xpud *x = start_swemu(
		"wormhole", "{\"Version\": {\"FileVersion\": \"2.0\"}, \"Platform\": {\"Boards\": []}}");
	json_t *b = xrt_backend(x);

	/* XRT is there and sees nothing: available, and saying why there is nothing */
	assert_true(json_is_true(json_object_get(b, "available")));
	assert_non_null(strstr(reason(b), "declares none"));
	json_decref(b);
	assert_int_equal(count_kind(x, "fpga"), 0);
	assert_null(device(x, "xrt-0"));
	test_xpud_free(x);
}

static void test_swemu_broken_config(void **state)
{
	struct test_xpud *x = start_swemu("wormhole", "{\"Version\": {\"FileVersion\": [garbage\n");
	json_t *b = xrt_backend(x);

	assert_true(json_is_true(json_object_get(b, "available")));
	assert_non_null(strstr(reason(b), "degraded: XRT software emulation: "));
	assert_non_null(strstr(reason(b), "emconfig.json: not JSON: line 1"));
	json_decref(b);
	assert_int_equal(count_kind(x, "fpga"), 0);
	assert_wormhole(x);
	assert_true(test_xpud_log_contains(x, "not JSON"));
	test_xpud_free(x);
}

static void test_swemu_missing_config(void **state)
{
	struct test_xpud *x = start_swemu("wormhole", NULL);
	json_t *b = xrt_backend(x);

	assert_true(json_is_false(json_object_get(b, "available")));
	assert_non_null(strstr(reason(b), "XRT software emulation: "));
	json_decref(b);
	test_xpud_free(x);
}

static void test_xrt_missing(void **state)
{
	char *root = test_fixture_new("alveo-u250"), lib[4096];
	struct test_xpud *x;
	json_t *b, *d;

	unsetenv("XCL_EMULATION_MODE");
	unsetenv("EMCONFIG_PATH");
	snprintf(lib, sizeof(lib), "%s/nowhere/libxrt_core.so.2", root);
	setenv("XPU_XRT_LIBRARY", lib, 1);
	x = test_xpud_start(root, NULL);
	b = xrt_backend(x);
	assert_true(json_is_false(json_object_get(b, "available")));
	assert_non_null(strstr(reason(b), "XRT not found: "));
	assert_non_null(strstr(reason(b), "libxrt_core.so.2: cannot open shared object file"));
	json_decref(b);
	/* the card is the PCI backend's, as before */
	d = device(x, "0000:3b:00.0");
	assert_non_null(d);
	assert_string_equal(str(d, "backend"), "pci");
	json_decref(d);
	test_xpud_free(x);
	unsetenv("XPU_XRT_LIBRARY");
}

/* xpud on alveo-u250 with the fake shim fed @description, and @config as xpud.yaml (or none). */
static struct test_xpud *start_fake(const char *description, const char *config)
{
	char *root = test_fixture_new("alveo-u250"), lib[4096], desc[4096], conf[4096];
	const char *args[] = { "--config", conf, NULL };

	snprintf(lib, sizeof(lib), "%s/xrt/libxrt_core.so.2", test_env("XPU_FAKE_NVML_DIR"));
	if (access(lib, R_OK) != 0) {
		print_message("the fake XRT was not built: skipped\n");
		exit(77);
	}
	snprintf(desc, sizeof(desc), "%s/run/fake-xrt.json", root);
	write_file(root, "run/fake-xrt.json", description);
	unsetenv("XCL_EMULATION_MODE");
	unsetenv("EMCONFIG_PATH");
	setenv("XPU_XRT_LIBRARY", lib, 1);
	setenv("XPU_FAKE_XRT", desc, 1);
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	if (config)
		write_file(root, "xpud.yaml", config);
	return test_xpud_start(root, config ? args : NULL);
}

static const char u250_card[] =
	"{\"chatter\": true, \"devices\": [{\"name\": \"" U250_SHELL "\",\n"
	" \"timestamp\": 1628027999, \"fpga\": \"xcu250-figd2104-2L-e\", \"pci\": \"0000:3b:00.1\",\n"
	" \"ddr_bytes\": 68719476736, \"banks\": 4, \"temperature\": 41, \"pex_mv\": 12100,\n"
	" \"pex_ma\": 2000, \"xclbin_uuid\": \"00112233-4455-6677-8899-aabbccddeeff\"}]}\n";

static void test_fake_card_merged(void **state)
{
	struct test_xpud *x = start_fake(u250_card, NULL);
	json_t *b = xrt_backend(x), *d, *nodes;

	assert_true(json_is_true(json_object_get(b, "available")));
	json_decref(b);
	/* one card: XRT's record merged over the PCI backend's (its two functions folded) */
	assert_int_equal(count_kind(x, "fpga"), 1);
	d = device(x, "0000:3b:00.0");
	assert_non_null(d);
	assert_string_equal(str(d, "backend"), "xrt");
	assert_string_equal(str(d, "model"), U250_SHELL);
	assert_true(json_integer_value(json_object_get(d, "memory_bytes")) == 64LL << 30);
	assert_string_equal(prop(d, "ddr_banks"), "4");
	assert_string_equal(prop(d, "fpga_part"), "xcu250-figd2104-2L-e");
	assert_string_equal(prop(d, "temperature_celsius"), "41");
	assert_string_equal(prop(d, "power_watts"), "24.20");
	assert_string_equal(prop(d, "clocks_mhz"), "300,500");
	assert_string_equal(prop(d, "xclbin_uuid"), "00112233-4455-6677-8899-aabbccddeeff");
	assert_string_equal(prop(d, "user_function"), "0000:3b:00.1");
	/* the PCI backend's facts stay: both functions, sysfs's ids of the card */
	assert_string_equal(prop(d, "pci_functions"), "0000:3b:00.0,0000:3b:00.1");
	assert_string_equal(str(json_object_get(d, "pci"), "device_id"), "0x5004");
	/* AMD/Xilinx's device plugin's resource and nodes */
	assert_string_equal(str(d, "resource"), "xilinx.com/fpga-" U250_SHELL "-1628027999");
	nodes = json_object_get(d, "device_nodes");
	assert_int_equal(json_array_size(nodes), 2);
	assert_string_equal(json_string_value(json_array_get(nodes, 0)), "/dev/xclmgmt15104");
	assert_string_equal(json_string_value(json_array_get(nodes, 1)), "/dev/dri/renderD128");
	assert_string_equal(str(json_object_get(d, "health"), "state"), "healthy");
	json_decref(d);
	/* what XRT printed on its standard output went to the log, not into the answer */
	assert_true(test_xpud_log_contains(x, "XRT build version: 2.13.466 (fake)"));
	test_xpud_free(x);
}

/*
 * The compute units of the loaded xclbin (recorded: the fake's IP layout): a property of the
 * card, and, when the policy asks (xrt-cus: cus), one shared slice each, named to the workload,
 * its resource named by its kernel; back to the whole card.
 */
static void test_compute_units(void **state)
{
	static const char card[] =
		"{\"devices\": [{\"name\": \"" U250_SHELL "\", \"timestamp\": 1628027999,\n"
		" \"pci\": \"0000:3b:00.1\", \"ddr_bytes\": 68719476736, \"banks\": 4,\n"
		" \"compute_units\": [\"krnl_vadd:krnl_vadd_1\", \"krnl_vadd:krnl_vadd_2\",\n"
		" \"krnl_mmult:krnl_mmult_1\"]}]}\n";
	struct test_xpud *x = start_fake(card, "partitions:\n  - match: {vendor: xilinx}\n"
					       "    xrt-cus: cus\n");
	static const char *const units[] = { "krnl_vadd:krnl_vadd_1", "krnl_vadd:krnl_vadd_2",
					     "krnl_mmult:krnl_mmult_1" };
	json_t *d, *doc, *sl, *g = NULL;
	size_t i;

	(void)state;
	d = test_get(x, "devices", "0000:3b:00.0");
	assert_string_equal(test_jprop(d, "compute_units"),
			    "krnl_vadd:krnl_vadd_1,krnl_vadd:krnl_vadd_2,krnl_mmult:krnl_mmult_1");
	json_decref(d);
	test_wait_settled(x, "0000:3b:00.0", "xrt-cus=cus");
	doc = test_get(x, "slices", NULL);
	assert_int_equal(json_array_size(json_object_get(doc, "slices")), 3);
	json_array_foreach(json_object_get(doc, "slices"), i, sl) {
		char id[64];

		snprintf(id, sizeof(id), "0000:3b:00.0/cu-%zu", i);
		assert_string_equal(test_jstr(sl, "id"), id);
		assert_string_equal(test_jstr(sl, "resource"),
				    i < 2 ? "xilinx.com/cu-krnl_vadd" : "xilinx.com/cu-krnl_mmult");
		assert_true(json_is_true(json_object_get(sl, "shared")));
		assert_string_equal(test_jstr(json_object_get(sl, "env"), "XPU_FPGA_COMPUTE_UNIT"),
				    units[i]);
		assert_true(test_has_node(sl, "/dev/xclmgmt15104"));
		assert_true(test_has_node(sl, "/dev/dri/renderD128"));
	}
	json_decref(doc);
	assert_int_equal(test_capacity(x, "xilinx.com/cu-krnl_vadd", "total"), 2);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"xilinx.com/cu-krnl_mmult\"}", &g),
			 201);
	assert_string_equal(test_jstr(json_object_get(g, "env"), "XPU_FPGA_COMPUTE_UNIT"),
			    "krnl_mmult:krnl_mmult_1");
	json_decref(g);
	test_xpud_free(x);
}

static void test_fake_probe_crashes(void **state)
{
	struct test_xpud *x = start_fake("{\"probe\": \"crash\", \"devices\": [{}]}", NULL);
	json_t *b = xrt_backend(x), *d;

	assert_true(json_is_true(json_object_get(b, "available")));
	/* SIGSEGV, or SIGABRT where the sanitizers catch it first */
	assert_non_null(strstr(reason(b), "degraded: xrt helper: crashed (SIG"));
	json_decref(b);
	/* the card is still there, as the PCI backend sees it */
	d = device(x, "0000:3b:00.0");
	assert_non_null(d);
	assert_string_equal(str(d, "backend"), "pci");
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "xrt helper: crashed (SIG"));
	test_xpud_free(x);
}

static void test_fake_probe_hangs(void **state)
{
	struct test_xpud *x = start_fake("{\"probe\": \"hang\", \"devices\": [{}]}",
					 "xrt:\n  helper-timeout: 1s\n");
	json_t *b = xrt_backend(x), *d;

	assert_true(json_is_true(json_object_get(b, "available")));
	assert_string_equal(reason(b), "degraded: xrt helper: timed out after 1s");
	json_decref(b);
	d = device(x, "0000:3b:00.0");
	assert_non_null(d);
	assert_string_equal(str(d, "backend"), "pci");
	json_decref(d);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_swemu_two_cards),
		cmocka_unit_test(test_swemu_no_cards),
		cmocka_unit_test(test_swemu_broken_config),
		cmocka_unit_test(test_swemu_missing_config),
		cmocka_unit_test(test_xrt_missing),
		cmocka_unit_test(test_fake_card_merged),
		cmocka_unit_test(test_compute_units),
		cmocka_unit_test(test_fake_probe_crashes),
		cmocka_unit_test(test_fake_probe_hangs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
