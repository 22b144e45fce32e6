// SPDX-License-Identifier: GPL-2.0-or-later
/* The configuration file: accepted keys, line-numbered errors for everything else. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/kmod-config.h"
#include "backends/nvidia-config.h"
#include "core/config.h"
#include "shared/strv.h"

static const struct config_section *const sections[] = {
	&nvidia_config_section,
	&kmod_config_section,
	NULL,
};

static int parse(const char *text, struct config *c, char **err)
{
	config_init_sections(c, sections);
	return config_parse(text, strlen(text), c, err);
}

static void test_valid(void **state)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(parse("# xpud\nsocket: /run/x/x.sock\nsocket-group: xpu\n"
			       "socket-mode: 0666\nadmin-group: wheel\nhealth-interval: 500ms\n"
			       "log-level: debug\n",
			       &c, &err),
			 0);
	assert_string_equal(c.socket_path, "/run/x/x.sock");
	assert_string_equal(c.socket_group, "xpu");
	assert_int_equal(c.socket_mode, 0666);
	assert_string_equal(c.admin_group, "wheel");
	assert_true(c.health_interval_usec == 500000);
	assert_int_equal(c.health.suspect_after, 2);
	assert_true(c.health.probation_usec == 60000000);
	assert_int_equal(c.log_level, 7);
	config_done(&c);

	assert_int_equal(parse("nvidia-xid-actions: \"79:reboot-node, 13:reset-gpu\"\n", &c, &err), 0);
	assert_int_equal(nvidia_config_get(&c)->xid_actions.n, 2);
	assert_int_equal(nvidia_config_get(&c)->xid_actions.items[0].xid, 79);
	assert_int_equal(nvidia_config_get(&c)->xid_actions.items[0].action,
			 HEALTH_ACTION_REBOOT_NODE);
	assert_int_equal(nvidia_config_get(&c)->xid_actions.items[1].action,
			 HEALTH_ACTION_RESET_DEVICE);
	config_done(&c);

	/* An empty file means defaults. */
	assert_int_equal(parse("", &c, &err), 0);
	assert_int_equal(c.socket_mode, 0660);
	assert_true(c.health_interval_usec == 30000000);
	config_done(&c);
}

static void expect_error(const char *text, const char *needle)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(parse(text, &c, &err), -EINVAL);
	assert_non_null(err);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	free(err);
	config_done(&c);
}

static void test_errors(void **state)
{
	expect_error("socket: /a\nsokcet: /b\n", "line 2: unknown key 'sokcet'");
	expect_error("socket: relative/path\n", "line 1: socket: expected an absolute path");
	expect_error("\n\nsocket-mode: 999\n", "line 3: socket-mode");
	expect_error("health-interval: soon\n", "health-interval");
	expect_error("log-level: info\nhealth-suspect-after: 0\n",
		     "line 2: health-suspect-after: expected a number of failed probes from 1 to "
		     "1000, got '0'");
	expect_error("health-suspect-after: two\n", "health-suspect-after");
	expect_error("health-probation: 1.5s\n", "health-probation: expected a duration");
	expect_error("log-level: loud\n", "log-level");
	expect_error("socket: [a, b]\n", "not a list");
	expect_error("socket:\n  path: /a\n", "not a mapping");
	expect_error("socket: \"/a\n", "line");
	expect_error("just a string\n", "expected a mapping");
	expect_error("admin-group:\n", "line 1: admin-group: a value is required");
	expect_error("log-level: info\nlog-level: debug\n", "line 2: 'log-level' is given twice");
	expect_error("log-level: info\n---\nlog-level: debug\n", "only one YAML document");
	expect_error("\nnvidia-xid-actions: 79:reset-gpu, 13:explode\n",
		     "line 2: nvidia-xid-actions: '13:explode' is not XID:ACTION");
	expect_error("nvidia-xid-actions: 79\n", "'79' is not XID:ACTION");
	expect_error("[socket, log-level]\n", "line 1: expected a mapping of keys to values");
	expect_error("a: &x 1\nb: *x\n", "line 2: aliases are not supported");
	expect_error("socket: /a\npartitions: []\nsocket: /b\n", "line 3: 'socket' is given twice");
	expect_error("? [a]\n: b\n", "line 1: expected a key, not a list");
	expect_error("partitions: [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]\n", "nested more than 16");
	expect_error("kmod-resource: edu\n", "line 1: kmod-resource: 'edu' is not a resource name");
}

/* reset-when-idle: off by default; kinds as the API names them, all, none. */
static void test_reset_when_idle(void **state)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(parse("", &c, &err), 0);
	assert_int_equal(c.reset_when_idle, 0);
	config_done(&c);

	assert_int_equal(parse("reset-when-idle: [gpu, accel]\n", &c, &err), 0);
	assert_int_equal(c.reset_when_idle,
			 CONFIG_KIND_BIT(XPU_KIND_GPU) | CONFIG_KIND_BIT(XPU_KIND_ACCEL));
	assert_false(c.reset_when_idle & CONFIG_KIND_BIT(XPU_KIND_FPGA));
	config_done(&c);

	assert_int_equal(parse("reset-when-idle:\n  - fpga\n", &c, &err), 0);
	assert_int_equal(c.reset_when_idle, CONFIG_KIND_BIT(XPU_KIND_FPGA));
	config_done(&c);

	assert_int_equal(parse("reset-when-idle: gpu\n", &c, &err), 0);
	assert_int_equal(c.reset_when_idle, CONFIG_KIND_BIT(XPU_KIND_GPU));
	config_done(&c);

	assert_int_equal(parse("reset-when-idle: all\n", &c, &err), 0);
	for (int k = 0; k < _XPU_KIND_MAX; k++)
		assert_true(c.reset_when_idle & CONFIG_KIND_BIT(k));
	config_done(&c);

	assert_int_equal(parse("reset-when-idle: none\n", &c, &err), 0);
	assert_int_equal(c.reset_when_idle, 0);
	config_done(&c);

	assert_int_equal(parse("reset-when-idle: []\n", &c, &err), 0);
	assert_int_equal(c.reset_when_idle, 0);
	config_done(&c);

	expect_error("log-level: info\nreset-when-idle: [gpu, accelerator]\n",
		     "line 2: reset-when-idle: 'accelerator' is not a device kind "
		     "(gpu, accel, fpga)");
	expect_error("\n\nreset-when-idle:\n  - gpu\n  - tpu\n", "line 5: reset-when-idle: 'tpu'");
	expect_error("reset-when-idle: {gpu: true}\n",
		     "line 1: reset-when-idle: expected a list of device kinds");
	expect_error("reset-when-idle: [[gpu]]\n",
		     "line 1: reset-when-idle: expected a device kind");
	expect_error("reset-when-idle: yes\n", "'yes' is not a device kind");
	expect_error("reset-when-idle: gpu\nreset-when-idle: all\n",
		     "line 2: 'reset-when-idle' is given twice");
}

static void test_kmod_resource(void **state)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(parse("log-level: info\n", &c, &err), 0);
	assert_null(kmod_config_get(&c)->resource);
	config_done(&c);
	assert_int_equal(parse("kmod-resource: example.com/accel\n", &c, &err), 0);
	assert_string_equal(kmod_config_get(&c)->resource, "example.com/accel");
	config_done(&c);
}

static void test_policy(void **state)
{
	const struct policy_rule *rule;
	struct config c;
	char *err = NULL;

	assert_int_equal(parse("log-level: info\n"
			       "partitions:\n"
			       "  - match: all\n"
			       "    replicas: 4\n"
			       "  - match: {pci: \"db:00.0\"}\n"
			       "    mig: all-1g.10gb\n"
			       "    mig-enable: true\n"
			       "  - match: {vendor: amd}\n"
			       "    amd-partition: cpx\n"
			       "  - match: {model: \"NVIDIA A100*\", uuid: GPU-1234}\n"
			       "    memory-shares: {count: 4, size: 10GiB, compute: 0.25}\n"
			       "    resource: nvidia.com/gpu-shared\n"
			       "  - match:\n"
			       "      vendor: nvidia\n"
			       "    mig: [3g.40gb, 2g.20gb, 1g.10gb+me]\n"
			       "  - match: {vendor: nvidia}\n"
			       "    whole: true\n"
			       "    resource: example.com/gpu\n",
			       &c, &err),
			 0);
	assert_int_equal(c.log_level, 6);
	assert_int_equal(c.policy.n_rules, 6);

	rule = &c.policy.rules[0];
	assert_int_equal(rule->line, 3);
	assert_true(rule->match.all);
	assert_int_equal(rule->offer.kind, OFFER_REPLICAS);
	assert_int_equal(rule->offer.count, 4);
	assert_null(rule->offer.resource);

	rule = &c.policy.rules[1];
	assert_int_equal(rule->line, 5);
	assert_false(rule->match.all);
	assert_string_equal(rule->match.pci, "0000:db:00.0"); /* canonical */
	assert_int_equal(rule->offer.kind, OFFER_MIG);
	assert_int_equal(strv_length(rule->offer.mig_profiles), 1);
	assert_string_equal(rule->offer.mig_profiles[0], "all-1g.10gb");
	assert_true(rule->offer.mig_enable);

	rule = &c.policy.rules[2];
	assert_string_equal(rule->match.vendor, "amd");
	assert_int_equal(rule->offer.kind, OFFER_AMD_PARTITION);
	assert_string_equal(rule->offer.amd_mode, "cpx");

	rule = &c.policy.rules[3];
	assert_string_equal(rule->match.model, "NVIDIA A100*");
	assert_string_equal(rule->match.uuid, "GPU-1234");
	assert_int_equal(rule->offer.kind, OFFER_MEMORY_SHARES);
	assert_int_equal(rule->offer.count, 4);
	assert_true(rule->offer.share_bytes == 10ULL << 30);
	assert_true(rule->offer.compute == 0.25);
	assert_string_equal(rule->offer.resource, "nvidia.com/gpu-shared");

	rule = &c.policy.rules[4];
	assert_int_equal(rule->line, 13);
	assert_int_equal(strv_length(rule->offer.mig_profiles), 3);
	assert_string_equal(rule->offer.mig_profiles[2], "1g.10gb+me");
	assert_false(rule->offer.mig_enable);

	rule = &c.policy.rules[5];
	assert_int_equal(rule->offer.kind, OFFER_WHOLE);
	assert_string_equal(rule->offer.resource, "example.com/gpu");
	config_done(&c);
	assert_int_equal(c.policy.n_rules, 0);

	/* shares without size and compute; an empty list of rules */
	assert_int_equal(parse("partitions:\n- match: all\n  memory-shares: {count: 3}\n", &c, &err),
			 0);
	assert_true(c.policy.rules[0].offer.share_bytes == 0);
	assert_true(c.policy.rules[0].offer.compute == 0);
	config_done(&c);
	assert_int_equal(parse("partitions: []\n", &c, &err), 0);
	assert_int_equal(c.policy.n_rules, 0);
	config_done(&c);
}

#define RULE "partitions:\n  - match: all\n"

static void test_policy_errors(void **state)
{
	/* the list and its rules */
	expect_error("partitions: 3\n", "line 1: partitions: expected a list of rules");
	expect_error("partitions:\n  match: all\n", "line 1: partitions: expected a list of rules");
	expect_error("partitions:\n  - whole\n", "line 2: partitions: each rule must be a mapping");
	expect_error("partitions:\n  - replicas: 4\n",
		     "line 2: a partition rule needs 'match' ('all', or a mapping");
	expect_error(RULE, "line 2: a partition rule needs one offer: whole, replicas");
	expect_error(RULE "    replica: 4\n", "line 3: unknown key 'replica' in a partition rule "
					     "(known: match, whole, replicas, memory-shares, mig, "
					     "mig-enable, amd-partition, resource)");
	expect_error(RULE "    replicas: 2\n    whole: true\n",
		     "line 4: whole: a rule has exactly one offer, and 'replicas' was given on line 3");
	expect_error(RULE "    replicas: 2\n    replicas: 3\n", "line 4: 'replicas' is given twice");
	expect_error(RULE "    whole: true\n  - match: all\n    whole: maybe\n",
		     "line 5: whole: expected true or false, got 'maybe'");
	expect_error(RULE "    whole: false\n", "line 3: whole: expected true");

	/* selectors */
	expect_error("partitions:\n  - match: {}\n    whole: true\n",
		     "line 2: match: an empty selector matches no device");
	expect_error("partitions:\n  - match: any\n    whole: true\n",
		     "line 2: match: expected 'all' or a mapping of vendor, model, pci and uuid, "
		     "got 'any'");
	expect_error("partitions:\n  - match: [nvidia]\n    whole: true\n",
		     "line 2: match: expected 'all' or a mapping of vendor, model, pci and uuid, "
		     "got a list");
	expect_error("partitions:\n  - match: {vendor: nvidia, serial: 1}\n    whole: true\n",
		     "line 2: unknown key 'serial' in match (known: vendor, model, pci, uuid)");
	expect_error("partitions:\n  - match:\n      pci: 0000:zz:00.0\n    whole: true\n",
		     "line 3: pci: expected a PCI address such as 0000:db:00.0, got '0000:zz:00.0'");
	expect_error("partitions:\n  - match: {vendor: NVIDIA}\n    whole: true\n",
		     "line 2: vendor: expected a lower-case vendor name");
	expect_error("partitions:\n  - match: {model: \"\"}\n    whole: true\n",
		     "line 2: model: expected a model name or pattern");
	expect_error("partitions:\n  - match: {uuid: [a]}\n    whole: true\n",
		     "line 2: 'uuid': expected a single value, not a list");

	/* replicas */
	expect_error(RULE "    replicas: 0\n",
		     "line 3: replicas: expected a whole number from 1 to 64, got '0'");
	expect_error(RULE "    replicas: 65\n", "line 3: replicas: expected a whole number from 1 to 64");
	expect_error(RULE "    replicas: -1\n", "line 3: replicas: expected a whole number");
	expect_error(RULE "    replicas: 2.5\n", "line 3: replicas: expected a whole number");

	/* memory shares */
	expect_error(RULE "    memory-shares: 4\n",
		     "line 3: memory-shares: expected a mapping such as {count: 4");
	expect_error(RULE "    memory-shares: {size: 10GiB}\n",
		     "line 3: memory-shares: 'count' is required");
	expect_error(RULE "    memory-shares: {count: 65}\n",
		     "line 3: count: expected a whole number from 1 to 64, got '65'");
	expect_error(RULE "    memory-shares: {count: 4, size: 10GB}\n",
		     "line 3: size: expected a size with a unit such as 10GiB or 512MiB (B, KiB, "
		     "MiB, GiB, TiB), got '10GB'");
	expect_error(RULE "    memory-shares: {count: 4, size: 10}\n", "got '10'");
	expect_error(RULE "    memory-shares: {count: 4, size: 0GiB}\n", "got '0GiB'");
	/* CUDA's MPS limit is in MiB: 512KiB would be a limit of 0M */
	expect_error(RULE "    memory-shares: {count: 4, size: 512KiB}\n",
		     "line 3: size: a memory share must be at least 1MiB (CUDA's MPS limits memory "
		     "in whole MiB), got '512KiB'");
	expect_error(RULE "    memory-shares: {count: 4, size: 1048575B}\n", "got '1048575B'");
	expect_error(RULE "    memory-shares: {count: 4, size: 99999999999999TiB}\n",
		     "got '99999999999999TiB'");
	expect_error(RULE "    memory-shares: {count: 4, compute: 0}\n",
		     "line 3: compute: expected a fraction of the device greater than 0 and at "
		     "most 1, such as 0.25, got '0'");
	expect_error(RULE "    memory-shares: {count: 1, compute: 1.5}\n", "got '1.5'");
	expect_error(RULE "    memory-shares: {count: 1, compute: nan}\n", "got 'nan'");
	expect_error(RULE "    memory-shares: {count: 1, compute: 25%}\n", "got '25%'");
	expect_error(RULE "    memory-shares: {count: 4, compute: 0.5}\n",
		     "line 3: memory-shares: 4 shares of compute 0.5 add up to more than the device "
		     "(count x compute must be at most 1)");
	expect_error(RULE "    memory-shares:\n      count: 2\n      shares: 2\n",
		     "line 5: unknown key 'shares' in memory-shares (known: count, size, compute)");

	/* MIG */
	expect_error(RULE "    mig: 1g.10gb\n",
		     "line 3: mig: expected all-<profile> (such as all-1g.10gb) or a list of "
		     "profiles such as [3g.40gb, 2g.20gb], got '1g.10gb'");
	expect_error(RULE "    mig: all-big\n", "got 'all-big'");
	expect_error(RULE "    mig: []\n", "line 3: mig: expected all-<profile>");
	expect_error(RULE "    mig:\n      - 3g.40gb\n      - 2g.20\n",
		     "line 5: mig: '2g.20' is not a MIG profile (<n>g.<m>gb, optionally with +me, "
		     "such as 1g.10gb)");
	expect_error(RULE "    mig: [0g.10gb]\n", "'0g.10gb' is not a MIG profile");
	expect_error(RULE "    mig: [1g.10gb+mx]\n", "'1g.10gb+mx' is not a MIG profile");
	expect_error(RULE "    mig: [all-1g.10gb]\n", "'all-1g.10gb' is not a MIG profile");
	expect_error(RULE "    mig: all-1g.10gb\n    mig-enable: yes\n",
		     "line 4: mig-enable: expected true or false, got 'yes'");
	expect_error(RULE "    replicas: 2\n    mig-enable: true\n",
		     "line 4: mig-enable: only applies to a rule with 'mig'");

	/* AMD */
	expect_error(RULE "    amd-partition: tpx\n",
		     "line 3: amd-partition: expected spx, dpx, qpx or cpx, got 'tpx'");

	/* resource names */
	expect_error(RULE "    whole: true\n    resource: gpu\n",
		     "line 4: resource: expected a resource name such as nvidia.com/gpu-shared (a "
		     "lower-case domain, '/', then letters, digits, '.', '_' or '-'), got 'gpu'");
	expect_error(RULE "    whole: true\n    resource: Example.com/gpu\n", "got 'Example.com/gpu'");
	expect_error(RULE "    whole: true\n    resource: example..com/gpu\n", "got 'example..com/gpu'");
	expect_error(RULE "    whole: true\n    resource: -x.com/gpu\n", "got '-x.com/gpu'");
	expect_error(RULE "    whole: true\n    resource: x.com/gpu/a\n", "got 'x.com/gpu/a'");
	expect_error(RULE "    whole: true\n    resource: x.com/-gpu\n", "got 'x.com/-gpu'");
	expect_error(RULE "    whole: true\n    resource: x.com/\n", "got 'x.com/'");

	/* a later garbage rule fails the whole file */
	expect_error("partitions:\n  - match: all\n    whole: true\n  - match: all\n"
		     "    replicas: many\n",
		     "line 5: replicas");
}

static void test_sizes(void **state)
{
	uint64_t b;

	assert_int_equal(parse_size("10GiB", &b), 0);
	assert_true(b == 10ULL << 30);
	assert_int_equal(parse_size("10G", &b), 0);
	assert_true(b == 10ULL << 30);
	assert_int_equal(parse_size("512MiB", &b), 0);
	assert_true(b == 512ULL << 20);
	assert_int_equal(parse_size("4K", &b), 0);
	assert_true(b == 4096);
	assert_int_equal(parse_size("2TiB", &b), 0);
	assert_true(b == 2ULL << 40);
	assert_int_equal(parse_size("100B", &b), 0);
	assert_true(b == 100);
	assert_int_equal(parse_size("10", &b), -EINVAL);
	assert_int_equal(parse_size("10 GiB", &b), -EINVAL);
	assert_int_equal(parse_size("10gib", &b), -EINVAL);
	assert_int_equal(parse_size("1.5GiB", &b), -EINVAL);
	assert_int_equal(parse_size("16777216TiB", &b), -ERANGE);
}

static void test_durations(void **state)
{
	uint64_t u;

	assert_int_equal(parse_duration("30s", &u), 0);
	assert_true(u == 30000000);
	assert_int_equal(parse_duration("2m", &u), 0);
	assert_true(u == 120000000);
	assert_int_equal(parse_duration("10", &u), 0);
	assert_true(u == 10000000);
	assert_int_equal(parse_duration("0", &u), 0);
	assert_true(u == 0);
	assert_int_equal(parse_duration("1d", &u), -EINVAL);
	assert_int_equal(parse_duration("s", &u), -EINVAL);
	assert_int_equal(parse_duration("99999999999999999999s", &u), -ERANGE);
}

/* A layout (xpuctl repartition): a partition rule's offer without 'match'. */
static void test_layouts(void **state)
{
	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "", "line 1: a layout needs one offer" },
		{ "match: all\nwhole: true\n", "line 1: unknown key 'match' in a layout" },
		{ "replicas: 4\nwhole: true\n", "line 2: whole: a rule has exactly one offer" },
		{ "mig: [3g.40gb\n", "line " },
		{ "replicas: 0\n", "replicas" },
		{ "mig-enable: true\nwhole: true\n", "mig-enable: only applies to a rule with 'mig'" },
		{ "[whole]\n", "must be a mapping" },
		{ "a: &x 1\nb: *x\n", "aliases are not supported" },
	};
	struct offer o = {};
	char *err = NULL;
	struct config c;
	const char *good = "mig: [3g.40gb, 3g.40gb]\nmig-enable: true\nresource: example.com/big\n";

	assert_int_equal(config_parse_layout(good, strlen(good), &o, &err), 0);
	assert_int_equal(o.kind, OFFER_MIG);
	assert_int_equal(strv_length(o.mig_profiles), 2);
	assert_true(o.mig_enable);
	assert_string_equal(o.resource, "example.com/big");
	offer_done(&o);
	assert_int_equal(config_parse_layout("replicas: 4", 11, &o, &err), 0);
	assert_int_equal(o.kind, OFFER_REPLICAS);
	assert_int_equal(o.count, 4);
	offer_done(&o);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_parse_layout(bad[i].text, strlen(bad[i].text), &o, &err),
				 -EINVAL);
		assert_non_null(err);
		if (!strstr(err, bad[i].error))
			fail_msg("layout '%s': error '%s' does not mention '%s'", bad[i].text, err,
				 bad[i].error);
		free(err);
		err = NULL;
	}

	assert_int_equal(parse("repartition-timeout: 90s\n", &c, &err), 0);
	assert_true(c.repartition_timeout_usec == 90000000ULL);
	config_done(&c);
	assert_int_equal(parse("log-level: info\n", &c, &err), 0);
	assert_true(c.repartition_timeout_usec == 600000000ULL);
	config_done(&c);
	expect_error("repartition-timeout: later\n",
		     "line 1: repartition-timeout: expected a duration such as 10m");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_reset_when_idle),
		cmocka_unit_test(test_kmod_resource),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_layouts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
