// SPDX-License-Identifier: GPL-2.0-or-later
/* The configuration file: accepted keys, line-numbered errors for everything else. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "backends/kmod-config.h"
#include "backends/nvidia-config.h"
#include "backends/vendor-rules.h"
#include "core/config.h"
#include "shared/strv.h"

static const struct config_section *const sections[] = {
	&nvidia_config_section,
	&kmod_config_section,
	NULL,
};

static int parse_with(const struct config_section *const *with, const char *text,
		      struct config *c, char **err)
{
	config_init_sections(c, with);
	return config_parse(text, strlen(text), c, err);
}

static int parse(const char *text, struct config *c, char **err)
{
	return parse_with(sections, text, c, err);
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

static void expect_error_with(const struct config_section *const *with, const char *text,
			      const char *needle)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(parse_with(with, text, &c, &err), -EINVAL);
	assert_non_null(err);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	free(err);
	config_done(&c);
}

static void expect_error(const char *text, const char *needle)
{
	expect_error_with(sections, text, needle);
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

/* enforce: where confined grants go; detected (NULL, auto) unless given. */
static void test_enforce(void **state)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(parse("", &c, &err), 0);
	assert_null(c.enforce.cgroup_root);
	assert_null(c.enforce.devices_v1_root);
	assert_int_equal(c.enforce.devices, 0);
	config_done(&c);

	assert_int_equal(parse("enforce:\n  cgroup-root: /sys/fs/cgroup/xpu\n"
			       "  devices-v1-root: /sys/fs/cgroup/devices/xpu\n"
			       "  devices: devices-v1\n",
			       &c, &err),
			 0);
	assert_string_equal(c.enforce.cgroup_root, "/sys/fs/cgroup/xpu");
	assert_string_equal(c.enforce.devices_v1_root, "/sys/fs/cgroup/devices/xpu");
	assert_int_equal(c.enforce.devices, 2);
	config_done(&c);

	expect_error("enforce: {cgroup-root: relative/x}\n", "line 1: cgroup-root");
	expect_error("enforce: {devices: ebpf}\n", "auto, bpf or devices-v1");
	expect_error("enforce: {cgroup: /x}\n", "unknown key 'cgroup' in enforce");
}

static void test_metrics(void **state)
{
	struct config c;
	char *err = NULL;

	/* off by default, renewed every 15 s once on */
	assert_int_equal(parse("", &c, &err), 0);
	assert_null(c.metrics.listen);
	assert_true(c.metrics.interval_usec == 15000000);
	config_done(&c);

	assert_int_equal(parse("metrics: {listen: \"127.0.0.1:9400\", interval: 30s}\n", &c, &err),
			 0);
	assert_string_equal(c.metrics.listen, "127.0.0.1:9400");
	assert_true(c.metrics.interval_usec == 30000000);
	config_done(&c);
	assert_int_equal(parse("metrics:\n  listen: unix:/run/xpud/metrics.sock\n", &c, &err), 0);
	assert_string_equal(c.metrics.listen, "unix:/run/xpud/metrics.sock");
	config_done(&c);
	assert_int_equal(parse("metrics: {listen: \"[::1]:9400\"}\n", &c, &err), 0);
	config_done(&c);

	expect_error("metrics: {listen: localhost:9400}\n",
		     "line 1: listen: 'localhost:9400' is not an address such as 127.0.0.1:9400");
	expect_error("metrics: {listen: \"127.0.0.1:0\"}\n", "listen: '127.0.0.1:0' is not");
	expect_error("metrics: {listen: \"127.0.0.1:65536\"}\n", "is not an address");
	expect_error("metrics: {listen: \"127.0.0.1\"}\n", "is not an address");
	expect_error("metrics: {listen: \"[::1:9400\"}\n", "is not an address");
	expect_error("metrics: {listen: \"unix:relative\"}\n", "is not an address");
	expect_error("metrics: {interval: 500ms}\n",
		     "line 1: interval: expected a duration from 1s to 24h such as 15s, got '500ms'");
	expect_error("metrics: {port: 9400}\n", "unknown key 'port' in metrics");
}

static void test_shapes(void **state)
{
	struct config c;
	char *err = NULL;

	assert_int_equal(parse("", &c, &err), 0);
	assert_int_equal(c.shapes.n, 0);
	config_done(&c);

	assert_int_equal(parse("shapes:\n"
			       "  - {name: llm-70b, resource: nvidia.com/gpu, count: 4, "
			       "numa-local: true}\n"
			       "  - name: small\n"
			       "    resource: nvidia.com/mig-1g.10gb\n"
			       "    connected: true\n"
			       "    memory: 10GiB\n",
			       &c, &err),
			 0);
	assert_int_equal(c.shapes.n, 2);
	assert_string_equal(c.shapes.items[0].name, "llm-70b");
	assert_string_equal(c.shapes.items[0].resource, "nvidia.com/gpu");
	assert_int_equal(c.shapes.items[0].count, 4);
	assert_true(c.shapes.items[0].numa_local);
	assert_false(c.shapes.items[0].connected);
	assert_true(c.shapes.items[0].memory_bytes == 0);
	assert_string_equal(c.shapes.items[1].name, "small");
	assert_int_equal(c.shapes.items[1].count, 1); /* the default */
	assert_false(c.shapes.items[1].numa_local);
	assert_true(c.shapes.items[1].connected);
	assert_true(c.shapes.items[1].memory_bytes == 10ULL << 30);

	/* a copy outlives the configuration it came from (a reload) */
	struct config_shapes copy = {};

	assert_int_equal(config_shapes_copy(c.shapes.items, c.shapes.n, &copy), 0);
	config_done(&c);
	assert_int_equal(copy.n, 2);
	assert_string_equal(copy.items[1].resource, "nvidia.com/mig-1g.10gb");
	assert_true(copy.items[1].memory_bytes == 10ULL << 30);
	config_shapes_done(&copy);
	assert_int_equal(copy.n, 0);

	/* commented out: none */
	assert_int_equal(parse("shapes:\n", &c, &err), 0);
	assert_int_equal(c.shapes.n, 0);
	config_done(&c);

	expect_error("shapes: {name: a, resource: a.com/b}\n",
		     "line 1: shapes: expected a list of shapes such as");
	expect_error("shapes: [a]\n", "line 1: shapes: expected a shape such as");
	expect_error("shapes:\n  - {resource: a.com/b}\n", "line 2: shapes: a shape needs a name");
	expect_error("shapes:\n  - {name: a}\n", "line 2: shapes: a shape needs a resource");
	expect_error("shapes:\n  - {name: a, resource: a.com/b}\n  - {name: a, resource: "
		     "a.com/c}\n",
		     "line 3: shapes: shape 'a' is given twice");
	expect_error("shapes:\n  - {name: \"a b\", resource: a.com/b}\n",
		     "line 2: name: 'a b' is not a name of 1 to 63 letters");
	expect_error("shapes:\n  - {name: a, resource: gpu}\n",
		     "line 2: resource: 'gpu' is not a resource name");
	expect_error("shapes:\n  - {name: a, resource: a.com/b, count: 0}\n",
		     "line 2: count: expected a number of slices per workload from 1 to 100000, "
		     "got '0'");
	expect_error("shapes:\n  - {name: a, resource: a.com/b,\n     numa-local: yes}\n",
		     "line 3: numa-local: expected true or false, got 'yes'");
	expect_error("shapes:\n  - {name: a, resource: a.com/b, memory: 0}\n",
		     "line 2: memory: expected a size");
	expect_error("shapes:\n  - {name: a, resource: a.com/b, kind: gpu}\n",
		     "line 2: unknown key 'kind' in a shape (known: name, resource, count, "
		     "numa-local, connected, memory)");
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
	assert_int_equal(rule->offer.kind, OFFER_PARTITIONS);
	assert_ptr_equal(rule->offer.scheme, &nvidia_mig_scheme);
	assert_int_equal(strv_length(rule->offer.layout), 1);
	assert_string_equal(rule->offer.layout[0], "all-1g.10gb");
	assert_true(rule->offer.enable);

	rule = &c.policy.rules[2];
	assert_string_equal(rule->match.vendor, "amd");
	assert_int_equal(rule->offer.kind, OFFER_PARTITIONS);
	assert_ptr_equal(rule->offer.scheme, &amd_partition_scheme);
	assert_string_equal(rule->offer.layout[0], "cpx");

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
	assert_int_equal(strv_length(rule->offer.layout), 3);
	assert_string_equal(rule->offer.layout[2], "1g.10gb+me");
	assert_false(rule->offer.enable);

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
					     "mig-enable, amd-partition, intel-tiles, neuron-cores, xrt-cus, resource)");
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
		     "line 3: size: a memory share must be at least 1MiB (limits are enforced in "
		     "whole MiB), got '512KiB'");
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
	expect_error(RULE "    amd-partition: opx\n",
		     "line 3: amd-partition: expected spx, dpx, tpx, qpx or cpx, got 'opx'");

	/* resource names */
	expect_error(RULE "    whole: true\n    resource: gpu\n",
		     "line 4: resource: expected a resource name such as example.com/gpu-shared (a "
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
	assert_int_equal(o.kind, OFFER_PARTITIONS);
	assert_ptr_equal(o.scheme, &nvidia_mig_scheme);
	assert_int_equal(strv_length(o.layout), 2);
	assert_true(o.enable);
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

/* The backends' sections, in their new spelling. */
static void test_sections(void **state)
{
	const struct nvidia_config *nv;
	struct config c;
	char *err = NULL;

	assert_int_equal(parse("log-level: info\n"
			       "nvidia:\n"
			       "  nvml-library: /opt/nvidia/libnvidia-ml.so.1\n"
			       "  cuda-library: libcuda.so.1\n"
			       "  xid-actions:\n"
			       "    79: reboot-node\n"
			       "    13: ignore\n"
			       "  helper-timeout: 10s\n"
			       "  helper-failures: 5\n"
			       "  helper-max-age: 120s\n"
			       "  helper-memory: 1GiB\n"
			       "kmod: {resource: example.com/accel}\n",
			       &c, &err),
			 0);
	nv = nvidia_config_get(&c);
	assert_int_equal(nv->helper_timeout_usec, 10 * 1000000ULL);
	assert_int_equal(nv->helper_failures, 5);
	assert_int_equal(nv->helper_max_age_usec, 120 * 1000000ULL);
	assert_int_equal(nv->helper_memory, 1ULL << 30);
	assert_ptr_equal(nv, config_section(&c, "nvidia"));
	assert_string_equal(nv->nvml_library, "/opt/nvidia/libnvidia-ml.so.1");
	assert_string_equal(nv->cuda_library, "libcuda.so.1");
	assert_int_equal(nv->xid_actions.n, 2);
	assert_int_equal(nv->xid_actions.items[0].xid, 79);
	assert_int_equal(nv->xid_actions.items[0].action, HEALTH_ACTION_REBOOT_NODE);
	assert_int_equal(nv->xid_actions.items[1].xid, 13);
	assert_int_equal(nv->xid_actions.items[1].action, HEALTH_ACTION_IGNORE);
	assert_string_equal(kmod_config_get(&c)->resource, "example.com/accel");
	assert_null(c.warnings); /* the new spelling warns of nothing */
	config_done(&c);
	assert_null(config_section(&c, "nvidia"));

	/* the old one-string form of the XID table, under the section too */
	assert_int_equal(parse("nvidia:\n  xid-actions: \"43:reset-gpu, 13:app-error\"\n", &c, &err),
			 0);
	nv = nvidia_config_get(&c);
	assert_int_equal(nv->xid_actions.n, 2);
	assert_int_equal(nv->xid_actions.items[0].xid, 43);
	assert_int_equal(nv->xid_actions.items[0].action, HEALTH_ACTION_RESET_DEVICE);
	assert_int_equal(nv->xid_actions.items[1].action, HEALTH_ACTION_APP_ERROR);
	config_done(&c);

	/* absent or empty sections: every section exists with its defaults */
	assert_int_equal(parse("nvidia:\n# nvml-library: /x\nkmod: {}\n", &c, &err), 0);
	assert_non_null(config_section(&c, "nvidia"));
	assert_non_null(config_section(&c, "kmod"));
	assert_null(nvidia_config_get(&c)->nvml_library);
	assert_int_equal(nvidia_config_get(&c)->xid_actions.n, 0);
	assert_null(kmod_config_get(&c)->resource);
	assert_null(config_section(&c, "nothing"));
	config_done(&c);
	assert_null(nvidia_config_get(NULL)->cuda_library);
	assert_null(kmod_config_get(NULL)->resource);

	/* a configuration that knows no sections refuses them, old spellings too */
	config_init(&c);
	assert_int_equal(config_parse("nvidia: {}\n", 11, &c, &err), -EINVAL);
	assert_string_equal(err, "line 1: unknown key 'nvidia' (known: socket, socket-group, "
				 "socket-mode, admin-group, health-interval, log-level, partitions, "
				 "kubelet-dir, kubelet-pre-start-hook, cdi-dir, nfd-dir, "
				 "health-suspect-after, health-probation, repartition-timeout, "
				 "reset-when-idle, enforce, metrics, shapes)");
	free(err);
	err = NULL;
	config_done(&c);
	config_init(&c);
	assert_int_equal(config_parse("kmod-resource: a.b/c\n", 20, &c, &err), -EINVAL);
	assert_non_null(strstr(err, "line 1: unknown key 'kmod-resource'"));
	free(err);
	config_done(&c);
}

static void test_section_errors(void **state)
{
	expect_error("sokcet: /a\n", "line 1: unknown key 'sokcet' (known: socket, socket-group, "
				     "socket-mode, admin-group, health-interval, log-level, partitions, "
				     "kubelet-dir, kubelet-pre-start-hook, cdi-dir, nfd-dir, "
				     "health-suspect-after, health-probation, repartition-timeout, "
				     "reset-when-idle, enforce, metrics, shapes, nvidia, kmod)");
	expect_error("log-level: info\nnvidia:\n  nvml: /x\n",
		     "line 3: unknown key 'nvml' in nvidia (known: nvml-library, cuda-library, "
		     "xid-actions, helper-failures, helper-max-age, helper-timeout, "
		     "helper-memory)");
	expect_error("nvidia: {helper-failures: 0}\n", "line 1: helper-failures");
	expect_error("nvidia: {helper-timeout: soon}\n", "line 1: helper-timeout");
	expect_error("kmod:\n  resources: a.b/c\n",
		     "line 2: unknown key 'resources' in kmod (known: resource)");
	expect_error("\nkmod:\n  resource: edu\n",
		     "line 3: resource: 'edu' is not a resource name (vendor.domain/name)");
	expect_error("nvidia: [a]\n", "line 1: nvidia: expected a mapping of nvml-library, "
				      "cuda-library, xid-actions, helper-failures, helper-max-age, "
				      "helper-timeout, helper-memory, not a list");
	expect_error("kmod: example.com/accel\n",
		     "line 1: kmod: expected a mapping of resource, not a value");
	expect_error("nvidia: {}\nkmod: {}\nnvidia: {}\n", "line 3: 'nvidia' is given twice");
	expect_error("nvidia:\n  nvml-library: /a\n  nvml-library: /b\n",
		     "line 3: 'nvml-library' is given twice");
	expect_error("nvidia:\n  cuda-library:\n", "line 2: cuda-library: a value is required");
	expect_error("nvidia:\n  cuda-library: [a]\n",
		     "line 2: 'cuda-library': expected a single value, not a list");
	expect_error("nvidia:\n  xid-actions:\n    79: reset-gpu\n    13: explode\n",
		     "line 4: xid-actions: XID 13: expected an action, got 'explode' (actions: "
		     "ignore, app-error, restart-app, reset-gpu, reboot-node)");
	expect_error("nvidia:\n  xid-actions:\n    79: [ignore]\n",
		     "line 3: xid-actions: XID 79: expected an action, got a list");
	expect_error("nvidia:\n  xid-actions: {0: ignore}\n",
		     "line 2: xid-actions: expected an XID (a number from 1), got '0'");
	expect_error("nvidia:\n  xid-actions: {gpu: ignore}\n",
		     "line 2: xid-actions: expected an XID (a number from 1), got 'gpu'");
	expect_error("nvidia:\n  xid-actions:\n    79: ignore\n    79: reset-gpu\n",
		     "line 4: xid-actions: XID 79 is given twice");
	expect_error("nvidia:\n  xid-actions: [79]\n",
		     "line 2: xid-actions: expected a mapping of XID to action such as "
		     "{79: reset-gpu}, not a list");
	expect_error("nvidia:\n  xid-actions: \"79:reboot\"\n",
		     "line 2: xid-actions: '79:reboot' is not XID:ACTION");
	expect_error("nvidia:\n  xid-actions:\n", "line 2: xid-actions: a value is required");
}

/* The old top-level spellings: read as before, each with one warning naming the new one. */
static void test_old_keys(void **state)
{
	static const struct {
		const char *text, *warning;
	} old[] = {
		{ "nvml-library: /x/libnvidia-ml.so.1\n",
		  "line 2: 'nvml-library' is deprecated; write it as nvidia: {nvml-library: ...}" },
		{ "cuda-library: /x/libcuda.so.1\n",
		  "line 2: 'cuda-library' is deprecated; write it as nvidia: {cuda-library: ...}" },
		{ "nvidia-xid-actions: 43:reset-gpu\n",
		  "line 2: 'nvidia-xid-actions' is deprecated; write it as nvidia: "
		  "{xid-actions: ...}" },
		{ "kmod-resource: example.com/accel\n",
		  "line 2: 'kmod-resource' is deprecated; write it as kmod: {resource: ...}" },
	};
	_cleanup_free_ char *path = NULL;
	struct config c;
	char *err = NULL;
	char text[256];
	FILE *f;
	int fd;

	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		snprintf(text, sizeof(text), "log-level: info\n%s", old[i].text);
		assert_int_equal(parse(text, &c, &err), 0);
		assert_int_equal(strv_length(c.warnings), 1);
		assert_string_equal(c.warnings[0], old[i].warning);
		config_done(&c);
	}

	assert_int_equal(parse("nvml-library: /x/libnvidia-ml.so.1\n"
			       "cuda-library: /x/libcuda.so.1\n"
			       "nvidia-xid-actions: \"43:reset-gpu, 13:ignore\"\n"
			       "kmod-resource: example.com/accel\n",
			       &c, &err),
			 0);
	assert_string_equal(nvidia_config_get(&c)->nvml_library, "/x/libnvidia-ml.so.1");
	assert_string_equal(nvidia_config_get(&c)->cuda_library, "/x/libcuda.so.1");
	assert_int_equal(nvidia_config_get(&c)->xid_actions.n, 2);
	assert_int_equal(nvidia_config_get(&c)->xid_actions.items[1].action, HEALTH_ACTION_IGNORE);
	assert_string_equal(kmod_config_get(&c)->resource, "example.com/accel");
	assert_int_equal(strv_length(c.warnings), 4);
	assert_non_null(strstr(c.warnings[3], "line 4: 'kmod-resource'"));
	config_done(&c);

	/* both spellings: which one is meant would depend on the order */
	expect_error("nvml-library: /a\nnvidia:\n  nvml-library: /b\n",
		     "line 1: 'nvml-library' is the old spelling of nvidia: {nvml-library: ...}, "
		     "which line 3 gives too");
	expect_error("kmod: {resource: a.b/c}\nkmod-resource: a.b/d\n",
		     "line 2: 'kmod-resource' is the old spelling of kmod: {resource: ...}, which "
		     "line 1 gives too");
	expect_error("nvml-library: /a\nnvml-library: /b\n", "line 2: 'nvml-library' is given twice");
	/* a bad value under an old spelling is named as the file spells it */
	expect_error("nvidia-xid-actions: 79\n", "line 1: nvidia-xid-actions: '79' is not XID:ACTION");

	/* from a file: the warning names the file, like an error */
	path = strdup("/tmp/test-config-XXXXXX");
	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("# old\nkmod-resource: example.com/accel\n", f);
	fclose(f);
	config_init_sections(&c, sections);
	assert_int_equal(config_load(path, &c, &err), 0);
	snprintf(text, sizeof(text),
		 "%s:line 2: 'kmod-resource' is deprecated; write it as kmod: {resource: ...}", path);
	assert_int_equal(strv_length(c.warnings), 1);
	assert_string_equal(c.warnings[0], text);
	config_done(&c);
	unlink(path);
}

/* A section of every key type, as a backend could declare it. */
struct example_inner {
	unsigned depth;
	char *label;
};

struct example {
	char *name, *dir;
	bool on;
	unsigned count, mode;
	uint64_t every, size;
	int color;
	char **tags;
	struct example_inner inner;
};

static bool tag_valid(const char *s)
{
	return strspn(s, "abcdefghijklmnopqrstuvwxyz") == strlen(s);
}

static void example_init(void *data)
{
	struct example *e = data;

	e->count = 1;
	e->color = 2;
}

static const char *const colors[] = { "red", "green", "blue", NULL };

static const struct config_key inner_keys[] = {
	CONFIG_KEY_UNSIGNED("depth", struct example_inner, depth, 0, 9),
	CONFIG_KEY_STRING("label", struct example_inner, label),
	{},
};

static const struct config_key example_keys[] = {
	CONFIG_KEY_STRING("name", struct example, name),
	CONFIG_KEY_PATH("dir", struct example, dir),
	CONFIG_KEY_BOOL("on", struct example, on),
	CONFIG_KEY_UNSIGNED("count", struct example, count, 1, 64),
	CONFIG_KEY_MODE("mode", struct example, mode),
	CONFIG_KEY_DURATION("every", struct example, every),
	CONFIG_KEY_SIZE("size", struct example, size, .max = 1ULL << 40),
	CONFIG_KEY_ENUM("color", struct example, color, .words = colors),
	CONFIG_KEY_LIST("tags", struct example, tags, .valid = tag_valid,
			.expect = "a lower-case tag"),
	CONFIG_KEY_TABLE("inner", struct example, inner, inner_keys),
	{},
};

static const struct config_alias example_aliases[] = {
	{ "example-name", "name" },
	{},
};

static const struct config_section example_section = {
	.name = "example",
	.keys = example_keys,
	.size = sizeof(struct example),
	.init = example_init,
	.aliases = example_aliases,
};

static const struct config_section *const example_sections[] = { &example_section, NULL };

static int parse_example(const char *text, struct config *c, char **err)
{
	return parse_with(example_sections, text, c, err);
}

static void expect_example_error(const char *text, const char *needle)
{
	expect_error_with(example_sections, text, needle);
}

static void test_key_types(void **state)
{
	const struct example *e;
	struct config c;
	char *err = NULL;

	assert_int_equal(parse_example("example:\n"
				       "  name: thing\n"
				       "  dir: /var/lib/x\n"
				       "  on: true\n"
				       "  count: 64\n"
				       "  mode: 0640\n"
				       "  every: 2m\n"
				       "  size: 512MiB\n"
				       "  color: red\n"
				       "  tags: [a, bc]\n"
				       "  inner: {depth: 0, label: deep}\n",
				       &c, &err),
			 0);
	e = config_section(&c, "example");
	assert_non_null(e);
	assert_string_equal(e->name, "thing");
	assert_string_equal(e->dir, "/var/lib/x");
	assert_true(e->on);
	assert_int_equal(e->count, 64);
	assert_int_equal(e->mode, 0640);
	assert_true(e->every == 120000000ULL);
	assert_true(e->size == 512ULL << 20);
	assert_int_equal(e->color, 0);
	assert_int_equal(strv_length(e->tags), 2);
	assert_string_equal(e->tags[1], "bc");
	assert_int_equal(e->inner.depth, 0);
	assert_string_equal(e->inner.label, "deep");
	config_done(&c);

	/* defaults from the section's init; one value is a list of one; an empty list is given */
	assert_int_equal(parse_example("example:\n  tags: one\n", &c, &err), 0);
	e = config_section(&c, "example");
	assert_int_equal(e->count, 1);
	assert_int_equal(e->color, 2);
	assert_false(e->on);
	assert_int_equal(strv_length(e->tags), 1);
	config_done(&c);
	/* an old spelling is a top-level key only */
	expect_example_error("example:\n  example-name: x\n",
			     "line 2: unknown key 'example-name' in example (known: name, dir, on, "
			     "count, mode, every, size, color, tags, inner)");
	assert_int_equal(parse_example("example-name: x\nexample:\n  tags: []\n", &c, &err), 0);
	e = config_section(&c, "example");
	assert_string_equal(e->name, "x");
	assert_non_null(e->tags);
	assert_int_equal(strv_length(e->tags), 0);
	assert_string_equal(c.warnings[0],
			    "line 1: 'example-name' is deprecated; write it as example: {name: ...}");
	config_done(&c);

	expect_example_error("example:\n  name:\n", "line 2: name: a value is required");
	expect_example_error("example:\n  dir: var\n",
			     "line 2: dir: expected an absolute path, got 'var'");
	expect_example_error("example:\n  on: yes\n", "line 2: on: expected true or false, got 'yes'");
	expect_example_error("example:\n\n  count: 0\n",
			     "line 3: count: expected a whole number from 1 to 64, got '0'");
	expect_example_error("example:\n  count: 65\n", "got '65'");
	expect_example_error("example:\n  count: -1\n", "got '-1'");
	expect_example_error("example:\n  count: 99999999999999999999\n",
			     "got '99999999999999999999'");
	expect_example_error("example:\n  mode: 0800\n",
			     "line 2: mode: expected octal permission bits such as 0660, got '0800'");
	expect_example_error("example:\n  every: soon\n",
			     "line 2: every: expected a duration such as 30s, got 'soon'");
	expect_example_error("example:\n  size: 10\n",
			     "line 2: size: expected a size with a unit such as 10GiB or 512MiB (B, "
			     "KiB, MiB, GiB, TiB), got '10'");
	expect_example_error("example:\n  size: 0MiB\n", "got '0MiB'");
	expect_example_error("example:\n  size: 2TiB\n", "got '2TiB'"); /* over the key's max */
	expect_example_error("example:\n  color: pink\n",
			     "line 2: color: expected red, green or blue, got 'pink'");
	expect_example_error("example:\n  tags: [ok, Bad]\n",
			     "line 2: tags: 'Bad' is not a lower-case tag");
	expect_example_error("example:\n  tags:\n    - ok\n    - [x]\n",
			     "line 4: tags: expected a lower-case tag in the list, not a list");
	expect_example_error("example:\n  tags: {a: b}\n",
			     "line 2: tags: expected a list such as [a, b], not a mapping");
	expect_example_error("example:\n  inner:\n    depth: 10\n",
			     "line 3: depth: expected a whole number from 0 to 9, got '10'");
	expect_example_error("example:\n  inner: {deep: 1}\n",
			     "line 2: unknown key 'deep' in inner (known: depth, label)");
	expect_example_error("example:\n  inner: 3\n",
			     "line 2: inner: expected a mapping of depth, label, not a value");
	expect_example_error("example:\n  inner: {label: a, label: b}\n",
			     "line 2: 'label' is given twice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_reset_when_idle),
		cmocka_unit_test(test_enforce),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_kmod_resource),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_layouts),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_section_errors),
		cmocka_unit_test(test_old_keys),
		cmocka_unit_test(test_key_types),
	};

	partition_schemes_set(backend_partition_schemes);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
