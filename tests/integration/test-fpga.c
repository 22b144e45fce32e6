// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The FPGA backend (agent/backends/fpga.c) through the real xpud: a DFL card (dfl-n3000) and an
 * embedded board with two FPGA managers and their regions (fpga-regions), field by field; a
 * grant of the DFL card's resource with its port nodes and without the FME's; a manager in an
 * error state unhealthy with the reason until its state changes; bad input named in warnings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

#define N3000 "0000:5e:00.0"
#define IFACE "69528db6eb31577a8c3668f9faa081f6"
#define FN_DIR "sys/devices/pci0000:5d/0000:5d:00.0/0000:5e:00.0/fpga_region/region0"

/* Asserts property @key of @d is @want (NULL: absent), naming the device when not. */
static void assert_prop(json_t *d, const char *key, const char *want)
{
	const char *have = test_jstr(json_object_get(d, "properties"), key);

	if (!streq_ptr(have, want))
		fail_msg("%s: property %s is %s, expected %s", test_jstr(d, "id"), key, have ?: "(none)",
			 want ?: "(none)");
}

static void assert_nodes(json_t *nodes, const char *const *want)
{
	size_t n = 0;

	while (want[n])
		n++;
	if (json_array_size(nodes) != n)
		fail_msg("%zu nodes, expected %zu: %s", json_array_size(nodes), n,
			 json_dumps(nodes, JSON_COMPACT));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(nodes, i)), want[i]);
}

static size_t device_count(const struct test_xpud *x)
{
	json_t *doc = NULL;
	size_t n;

	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	n = json_array_size(json_object_get(doc, "devices"));
	json_decref(doc);
	return n;
}

static void remove_file(const char *root, const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(unlink(path), 0);
}

/* The DFL card: one record, merged with the PCI backend's, its ports' nodes, the FME's kept for
 * the administrator, Intel's device plugin's names; a grant hands out the ports. */
static void test_dfl_card(void **state)
{
	static const char *const ports[] = { "/dev/dfl-port.0", "/dev/dfl-port.1", NULL };
	struct test_xpud *x = test_xpud_start(test_fixture_new("dfl-n3000"), NULL);
	json_t *d, *doc = NULL;

	(void)state;
	assert_int_equal(device_count(x), 1);
	d = test_get(x, "devices", N3000);
	assert_string_equal(test_jstr(d, "kind"), "fpga");
	assert_string_equal(test_jstr(d, "backend"), "fpga");
	assert_string_equal(test_jstr(d, "vendor"), "intel");
	assert_string_equal(test_jstr(d, "model"), "Intel FPGA PAC N3000");
	assert_string_equal(test_jstr(d, "driver"), "dfl-pci");
	assert_string_equal(test_jstr(d, "resource"), "fpga.intel.com/region-" IFACE);
	assert_int_equal(json_integer_value(json_object_get(d, "numa_node")), 0);
	assert_nodes(json_object_get(d, "device_nodes"), ports);
	assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
	assert_prop(d, "admin_nodes", "/dev/dfl-fme.0");
	assert_prop(d, "dfl_fme", "dfl-fme.0");
	assert_prop(d, "dfl_ports", "dfl-port.0,dfl-port.1");
	assert_prop(d, "interface_id", IFACE);
	assert_prop(d, "ports_num", "2");
	assert_prop(d, "bitstream_id", "0x23000410010309");
	assert_prop(d, "dfl_port.dfl-port.0.afu_id", "d8424dc4a4a3c413f89e433683f9040b");
	assert_prop(d, "dfl_port.dfl-port.1.afu_id", "f7df405cbd7acf7222f144b0b93acd18");
	/* the names Intel's plugin gives these AFUs in af mode (its own tests' expectations) */
	assert_prop(d, "dfl_port.dfl-port.0.af_resource",
		    "fpga.intel.com/af-695.d84.aVKNtusxV3qMNmj5-qCB9thCTcSko8QT-J5DNoP5BAs");
	assert_prop(d, "dfl_port.dfl-port.1.af_resource",
		    "fpga.intel.com/af-695.f7d.aVKNtusxV3qMNmj5-qCB9vffQFy9es9yIvFEsLk6zRg");
	assert_prop(d, "dfl_features", "dfl-fme.0:fme:0xd,dfl-fme.0:fme:0x9");
	assert_prop(d, "fpga_managers", "fpga0");
	assert_prop(d, "fpga_manager.fpga0.name", "DFL FME FPGA Manager");
	assert_prop(d, "fpga_manager.fpga0.state", "unknown");
	assert_prop(d, "fpga_regions", "region0,region1");
	/* the container region has no manager; the FME's region has the card's */
	assert_prop(d, "fpga_region.region0.manager", NULL);
	assert_prop(d, "fpga_region.region1.manager", "fpga0");
	assert_prop(d, "fpga_region.region1.compat_id", IFACE);
	assert_prop(d, "fpga_region.region1.state", "unknown");
	json_decref(d);

	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"fpga.intel.com/region-" IFACE "\", "
					   "\"count\": 1}",
					   &doc),
			 201);
	assert_nodes(json_object_get(doc, "device_nodes"), ports);
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static char *config_in(const char *root)
{
	char *conf = NULL;
	FILE *f;

	assert_true(asprintf(&conf, "%s/xpud.yaml", root) > 0);
	f = fopen(conf, "we");
	assert_non_null(f);
	fputs("health-interval: 100ms\nhealth-suspect-after: 3\nhealth-probation: 1s\n", f);
	assert_int_equal(fclose(f), 0);
	return conf;
}

#define MGR1 "sys/class/fpga_manager/fpga1"

/*
 * The embedded board: two FPGAs, each with the region nearest its manager; the one whose manager
 * failed to write its image is unhealthy with the state in the reason, and healthy again once the
 * manager says it operates; the state properties follow.
 */
static void test_regions(void **state)
{
	char *root = test_fixture_new("fpga-regions"), *conf = config_in(root);
	const char *args[] = { "--config", conf, NULL };
	struct test_xpud *x = test_xpud_start(root, args);
	json_t *d, *h;

	(void)state;
	assert_int_equal(device_count(x), 2);
	d = test_get(x, "devices", "ff706000.fpga-mgr");
	assert_string_equal(test_jstr(d, "kind"), "fpga");
	assert_string_equal(test_jstr(d, "vendor"), "altera");
	assert_string_equal(test_jstr(d, "model"), "Altera SOCFPGA FPGA Manager");
	assert_string_equal(test_jstr(d, "resource"), "xpu.dev/altera-socfpga-fpga-manager");
	assert_true(json_is_null(json_object_get(d, "pci")));
	assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
	assert_prop(d, "fpga_regions", "region0");
	assert_prop(d, "fpga_region.region0.manager", "fpga0");
	assert_prop(d, "fpga_region.region0.state", "operating");
	assert_prop(d, "fpga_bridges", "br0,br1");
	assert_prop(d, "fpga_bridge.br0.name", "lwhps2fpga");
	assert_prop(d, "fpga_bridge.br1.state", "enabled");
	json_decref(d);

	d = test_get(x, "devices", "spi1.0");
	assert_string_equal(test_jstr(d, "vendor"), "xilinx");
	assert_string_equal(test_jstr(d, "model"), "Xilinx Slave Serial FPGA Manager");
	assert_prop(d, "fpga_regions", "region1");
	assert_prop(d, "fpga_region.region1.manager", "fpga1");
	assert_prop(d, "fpga_region.region1.state", "write error");
	assert_prop(d, "fpga_bridges", NULL);
	json_decref(d);
	h = test_wait_health(x, "spi1.0", "unhealthy");
	assert_string_equal(test_jstr(h, "reason"), "FPGA manager fpga1 (Xilinx Slave Serial FPGA Manager) "
					      "reports \"write error\"");
	json_decref(h);

	/* programmed again: healthy after the probation (no rescan: the health probe reads it) */
	test_put_file(x->root, MGR1 "/state", "operating\n");
	json_decref(test_wait_health(x, "spi1.0", "healthy"));

	/* a failed write whose status says why: both in the reason */
	test_put_file(x->root, MGR1 "/status", "reconfig operation error\nreconfig CRC error\n");
	test_put_file(x->root, MGR1 "/state", "write init error\n");
	h = test_wait_health(x, "spi1.0", "unhealthy");
	assert_string_equal(test_jstr(h, "reason"),
			    "FPGA manager fpga1 (Xilinx Slave Serial FPGA Manager) reports \"write "
			    "init error\" (status: reconfig operation error; reconfig CRC error)");
	json_decref(h);
	json_decref(test_wait_health(x, "ff706000.fpga-mgr", "healthy"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	free(conf);
}

/* Bad input on the board: a region no manager is near, a manager whose state is garbage, a class
 * link whose device went away. */
static const char board_faults_json[] =
	"{\"raw_files\": {"
	"\"sys/devices/platform/lonely/fpga_region/region5/uevent\": \"\","
	"\"sys/devices/platform/soc/ff706000.fpga-mgr/fpga_manager/fpga0/state\": \"\\u0001\\u0002\\n\"},"
	"\"links\": {"
	"\"sys/class/fpga_region/region5\": \"sys/devices/platform/lonely/fpga_region/region5\","
	"\"sys/class/fpga_manager/fpga9\": \"sys/devices/platform/gone/fpga_manager/fpga9\"}}";

/* A second manager in the SoC: as near to the base region as the first, so neither is its. */
static const char second_soc_manager_json[] =
	"{\"raw_files\": {"
	"\"sys/devices/platform/soc/ff800000.fpga-mgr/fpga_manager/fpga2/name\": \"Other\\n\","
	"\"sys/devices/platform/soc/ff800000.fpga-mgr/fpga_manager/fpga2/state\": \"operating\\n\"},"
	"\"links\": {\"sys/class/fpga_manager/fpga2\": "
	"\"sys/devices/platform/soc/ff800000.fpga-mgr/fpga_manager/fpga2\"}}";

static void test_board_faults(void **state)
{
	char *root = test_fixture_new("fpga-regions"), *err = NULL;
	struct test_xpud *x;
	json_t *d, *h;

	(void)state;
	if (fixture_build(board_faults_json, root, &err) < 0)
		fail_msg("%s", err);
	x = test_xpud_start(root, NULL);
	/* the region without a manager: a record of its own, without a state */
	assert_int_equal(device_count(x), 3);
	assert_true(test_xpud_log_contains(x, "lonely: no FPGA manager found for region region5 "
					      "(/sys/devices/platform/lonely/fpga_region/region5)"));
	d = test_get(x, "devices", "lonely");
	assert_string_equal(test_jstr(d, "kind"), "fpga");
	assert_prop(d, "fpga_regions", "region5");
	assert_prop(d, "fpga_region.region5.state", NULL);
	assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
	json_decref(d);

	/* garbage in a state file: named in a warning, the FPGA unhealthy, the rest of it kept */
	assert_true(test_xpud_log_contains(x, "ff706000.fpga-mgr: /sys/class/fpga_manager/fpga0/"
					      "state holds no printable value"));
	h = test_wait_health(x, "ff706000.fpga-mgr", "unhealthy");
	assert_string_equal(test_jstr(h, "reason"), "the state of FPGA manager fpga0 cannot be read");
	json_decref(h);
	d = test_get(x, "devices", "ff706000.fpga-mgr");
	assert_string_equal(test_jstr(d, "model"), "Altera SOCFPGA FPGA Manager");
	assert_prop(d, "fpga_region.region0.manager", "fpga0");
	assert_prop(d, "fpga_region.region0.state", NULL);
	json_decref(d);

	/* a manager removed during the scan: named, skipped */
	assert_true(test_xpud_log_contains(x, "/sys/class/fpga_manager/fpga9 leads nowhere"));
	json_decref(test_wait_health(x, "spi1.0", "unhealthy"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);

	root = test_fixture_new("fpga-regions");
	if (fixture_build(second_soc_manager_json, root, &err) < 0)
		fail_msg("%s", err);
	x = test_xpud_start(root, NULL);
	assert_true(test_xpud_log_contains(x, "no FPGA manager found for region region0"));
	d = test_get(x, "devices", "ff706000.fpga-mgr");
	assert_prop(d, "fpga_regions", NULL);
	json_decref(d);
	d = test_get(x, "devices", "spi1.0");
	assert_prop(d, "fpga_region.region1.manager", "fpga1");
	json_decref(d);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * Bad input on the DFL card: a DFL bus device without its type, a port without its AFU id and
 * one whose AFU id is all ones (the card's firmware crashed, as Intel's plugin reads it), a DFL
 * device gone during the scan.
 */
static void test_dfl_faults(void **state)
{
	char *root = test_fixture_new("dfl-n3000"), *err = NULL, *conf = config_in(root);
	const char *args[] = { "--config", conf, NULL };
	struct test_xpud *x;
	json_t *d, *h;

	(void)state;
	remove_file(root, FN_DIR "/dfl-fme.0/dfl_dev.0/type");
	remove_file(root, FN_DIR "/dfl-port.1/afu_id");
	/* and a region on the platform bus, which the card's manager is not near */
	if (fixture_build("{\"links\": {\"sys/bus/dfl/devices/dfl_dev.7\": "
			  "\"sys/devices/pci0000:5d/0000:5d:00.0/0000:5e:00.0/gone\", "
			  "\"sys/class/fpga_region/region5\": "
			  "\"sys/devices/platform/lonely/fpga_region/region5\"}, "
			  "\"raw_files\": {\"sys/devices/platform/lonely/fpga_region/region5/"
			  "uevent\": \"\"}}",
			  root, &err) < 0)
		fail_msg("%s", err);
	x = test_xpud_start(root, args);
	assert_true(test_xpud_log_contains(x, N3000 ": DFL device dfl_dev.0: /sys/bus/dfl/devices/"
					      "dfl_dev.0/type cannot be read"));
	assert_true(test_xpud_log_contains(x, N3000 ": /sys/bus/platform/devices/dfl-port.1/afu_id "
					      "is missing, reporting port dfl-port.1 without its "
					      "AFU id"));
	assert_true(test_xpud_log_contains(x, "/sys/bus/dfl/devices/dfl_dev.7 leads nowhere"));
	d = test_get(x, "devices", N3000);
	assert_prop(d, "dfl_features", "dfl-fme.0:fme:0x9");
	assert_prop(d, "fpga_regions", "region0,region1");
	assert_prop(d, "dfl_port.dfl-port.1.afu_id", NULL);
	assert_prop(d, "dfl_port.dfl-port.1.af_resource", NULL);
	assert_prop(d, "dfl_port.dfl-port.0.afu_id", "d8424dc4a4a3c413f89e433683f9040b");
	assert_int_equal(json_array_size(json_object_get(d, "device_nodes")), 2);
	assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
	json_decref(d);

	test_put_file(x->root, FN_DIR "/dfl-port.0/afu_id", "ffffffffffffffffffffffffffffffff\n");
	h = test_wait_health(x, N3000, "unhealthy");
	assert_string_equal(test_jstr(h, "reason"), "port dfl-port.0 reports AFU id "
					      "ffffffffffffffffffffffffffffffff: the card's "
					      "firmware crashed");
	json_decref(h);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	free(conf);
}

static void test_simulate_list(void **state)
{
	char *out = test_simulate_list_output();

	(void)state;
	assert_non_null(strstr(out, "dfl-n3000"));
	assert_non_null(strstr(out, "fpga-regions"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dfl_card),     cmocka_unit_test(test_regions),
		cmocka_unit_test(test_board_faults), cmocka_unit_test(test_dfl_faults),
		cmocka_unit_test(test_simulate_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
