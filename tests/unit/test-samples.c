// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A device's samples for the metrics (backends/samples.h): which properties they are, when they
 * are read, how a backend keeps the last ones; and amdgpu's RAS counter files read for both
 * counts.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "backends/drm-internal.h"
#include "backends/samples.h"

static void test_wanted_due(void **state)
{
	struct config c = { .metrics = { .interval_usec = 15000000 } };

	/* no listener, no samples */
	assert_false(samples_wanted(NULL));
	assert_false(samples_wanted(&c));
	c.metrics.listen = (char *)"127.0.0.1:9400";
	assert_true(samples_wanted(&c));
	/* never read: due; then once an interval has gone by */
	assert_true(samples_due(&c, 0, 1000));
	assert_false(samples_due(&c, 1000000, 1000000 + 14999999));
	assert_true(samples_due(&c, 1000000, 1000000 + 15000000));
	/* without a configuration: the default interval */
	assert_false(samples_due(NULL, 1000000, 2000000));
	assert_true(samples_due(NULL, 1000000, 1000000 + CONFIG_METRICS_INTERVAL_USEC));
}

static void test_keys_and_copy(void **state)
{
	_cleanup_(device_freep) struct xpu_device *a = device_new(), *b = device_new();

	assert_true(samples_key("utilization_percent"));
	assert_true(samples_key("memory_utilization_percent"));
	assert_true(samples_key("ras_errors.umc.correctable"));
	assert_false(samples_key("temperature_celsius"));
	assert_false(samples_key("vram_used_bytes"));

	assert_int_equal(samples_set_ras(a, "umc", 3, 1), 0);
	assert_string_equal(device_get_property(a, "ras_errors.umc.correctable"), "3");
	assert_string_equal(device_get_property(a, "ras_errors.umc.uncorrectable"), "1");
	/* a block name that would break the key or the label */
	assert_int_equal(samples_set_ras(a, "", 1, 1), -EINVAL);
	assert_int_equal(samples_set_ras(a, "a.b", 1, 1), -EINVAL);
	assert_int_equal(samples_set_ras(a, "a\"b", 1, 1), -EINVAL);

	assert_int_equal(device_set_property(a, "utilization_percent", "40"), 0);
	assert_int_equal(device_set_property(a, "temperature_celsius", "31"), 0);
	assert_int_equal(device_set_property(b, "temperature_celsius", "35"), 0);
	assert_int_equal(device_set_property(b, "utilization_percent", "90"), 0);
	/* other properties do not count */
	assert_false(samples_equal(a, b));
	assert_int_equal(samples_copy(b, a), 0);
	assert_true(samples_equal(a, b));
	assert_string_equal(device_get_property(b, "utilization_percent"), "40");
	assert_string_equal(device_get_property(b, "ras_errors.umc.uncorrectable"), "1");
	assert_string_equal(device_get_property(b, "temperature_celsius"), "35");
	/* dropped: only the others are left */
	assert_int_equal(samples_copy(b, NULL), 0);
	assert_null(device_get_property(b, "utilization_percent"));
	assert_null(device_get_property(b, "ras_errors.umc.correctable"));
	assert_string_equal(device_get_property(b, "temperature_celsius"), "35");
	assert_false(samples_equal(a, b));
	assert_int_equal(samples_copy(a, NULL), 0);
	assert_true(samples_equal(a, b));
}

static void test_ras_counts(void **state)
{
	uint64_t ue = 99, ce = 99;

	assert_int_equal(amdgpu_ras_counts("ue: 2\nce: 17\n", &ue, &ce), 0);
	assert_int_equal(ue, 2);
	assert_int_equal(ce, 17);
	assert_int_equal(amdgpu_ras_counts("ue: 0\nce: 0", &ue, &ce), 0);
	assert_int_equal(ce, 0);
	/* what the driver writes while RAS is not ready, and broken files: nothing taken */
	ue = ce = 5;
	assert_true(amdgpu_ras_counts("Query currently inaccessible\n", &ue, &ce) < 0);
	assert_true(amdgpu_ras_counts("ue: 1\n", &ue, &ce) < 0);
	assert_true(amdgpu_ras_counts("ce: 1\nue: 1\n", &ue, &ce) < 0);
	assert_true(amdgpu_ras_counts("ue: -1\nce: 1\n", &ue, &ce) < 0);
	assert_true(amdgpu_ras_counts("ue: 1\nce: 99999999999999999999\n", &ue, &ce) < 0);
	assert_int_equal(ue, 5);
	assert_int_equal(ce, 5);
	/* the uncorrectable count alone, for health */
	assert_int_equal(amdgpu_ras_parse("ue: 4\nce: 1\n", &ue), 0);
	assert_int_equal(ue, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wanted_due),
	    cmocka_unit_test(test_keys_and_copy),
	    cmocka_unit_test(test_ras_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
