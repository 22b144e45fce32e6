// SPDX-License-Identifier: GPL-2.0-or-later
/* kubelet's device checkpoint: both DeviceIDs shapes, what is skipped, what is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kube/checkpoint.h"
#include "shared/strv.h"

static int parse(const char *text, struct kubelet_entry **e, size_t *n)
{
	char *err = NULL;
	int r = kubelet_checkpoint_parse(text, strlen(text), e, n, &err);

	if (r == -EBADMSG)
		assert_non_null(err);
	free(err);
	return r;
}

static void test_numa_map_and_list(void **state)
{
	struct kubelet_entry *e = NULL;
	size_t n = 0;

	assert_int_equal(
		parse("{\"Data\":{\"PodDeviceEntries\":["
		      "{\"PodUID\":\"p1\",\"ContainerName\":\"train\",\"ResourceName\":\"nvidia.com/gpu\","
		      "\"DeviceIDs\":{\"0\":[\"0000:18:00.0\",\"0000:2a:00.0\"],\"1\":[\"0000:9a:00.0\"]},"
		      "\"AllocResp\":\"CgA=\"},"
		      "{\"PodUID\":\"p2\",\"ContainerName\":\"c\",\"ResourceName\":\"amd.com/gpu\","
		      "\"DeviceIDs\":[\"a\",\"b\",\"a\"]}],"
		      "\"RegisteredDevices\":{\"nvidia.com/gpu\":[\"0000:18:00.0\"]}},\"Checksum\":1}",
		      &e, &n),
		0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].pod_uid, "p1");
	assert_string_equal(e[0].container, "train");
	assert_string_equal(e[0].resource, "nvidia.com/gpu");
	assert_int_equal(strv_length(e[0].ids), 3);
	assert_true(strv_contains(e[0].ids, "0000:9a:00.0"));
	assert_int_equal(strv_length(e[1].ids), 2); /* once each */
	kubelet_entries_free(e, n);
}

static void test_skips_and_refusals(void **state)
{
	struct kubelet_entry *e = NULL;
	size_t n = 0;

	/* entries missing a field or with mistyped ids are skipped, the rest kept */
	assert_int_equal(
		parse("{\"Data\":{\"PodDeviceEntries\":["
		      "{\"PodUID\":\"p1\",\"ResourceName\":\"r/x\",\"DeviceIDs\":[\"a\"]},"
		      "{\"PodUID\":\"p1\",\"ContainerName\":\"c\",\"ResourceName\":\"r/x\",\"DeviceIDs\":[1]},"
		      "{\"PodUID\":\"p1\",\"ContainerName\":\"c\",\"ResourceName\":\"r/x\",\"DeviceIDs\":\"a\"},"
		      "{\"PodUID\":\"p1\",\"ContainerName\":\"c\",\"ResourceName\":\"r/x\",\"DeviceIDs\":[]},"
		      "{\"PodUID\":\"p3\",\"ContainerName\":\"c\",\"ResourceName\":\"r/x\",\"DeviceIDs\":[\"z\"]}]}}",
		      &e, &n),
		0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].pod_uid, "p3");
	kubelet_entries_free(e, n);

	/* empty and fresh checkpoints hold nothing */
	assert_int_equal(parse("{}", &e, &n), 0);
	assert_int_equal(n, 0);
	kubelet_entries_free(e, n);
	assert_int_equal(parse("{\"Data\":{\"PodDeviceEntries\":null}}", &e, &n), 0);
	assert_int_equal(n, 0);
	kubelet_entries_free(e, n);

	/* not a checkpoint at all */
	assert_int_equal(parse("", &e, &n), -EBADMSG);
	assert_int_equal(parse("[1]", &e, &n), -EBADMSG);
	assert_int_equal(parse("{\"Data\":{\"PodDeviceEntries\":{}}}", &e, &n), -EBADMSG);
	assert_int_equal(parse("{\"Data\":{\"PodDeviceEntries\":[", &e, &n), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numa_map_and_list),
		cmocka_unit_test(test_skips_and_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
