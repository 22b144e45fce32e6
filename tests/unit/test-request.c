// SPDX-License-Identifier: GPL-2.0-or-later
/* The API's request bodies: what parses, and the reason a client gets for what does not. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/vendor-rules.h"
#include "api/request.h"
#include "shared/strv.h"

/* Parses @body as a repartition and returns the reason of a refusal (static), or NULL. */
static const char *repartition_refused(const char *body)
{
	static char buf[512];
	struct repartition_request rr = {};
	_cleanup_free_ char *err = NULL;
	int r = request_parse_repartition(body, strlen(body), 7, &rr, &err);

	repartition_request_done(&rr);
	if (r == 0)
		return NULL;
	assert_int_equal(r, -EINVAL);
	assert_non_null(err);
	snprintf(buf, sizeof(buf), "%s", err);
	return buf;
}

static void test_repartition(void **state)
{
	struct repartition_request rr = {};
	_cleanup_free_ char *err = NULL;
	const char *body = "{\"device\": \"db:00.0\", \"layout\": \"mig: [3g.40gb, 3g.40gb]\", "
			   "\"timeout\": \"90s\"}";

	assert_int_equal(request_parse_repartition(body, strlen(body), 7, &rr, &err), 0);
	assert_null(err);
	assert_string_equal(rr.device, "db:00.0");
	assert_false(rr.policy);
	assert_int_equal(rr.layout.kind, OFFER_PARTITIONS);
	assert_ptr_equal(rr.layout.scheme, &nvidia_mig_scheme);
	assert_int_equal(strv_length(rr.layout.layout), 2);
	assert_int_equal(rr.timeout_usec, 90 * 1000000ULL);
	repartition_request_done(&rr);

	body = "{\"device\": \"x\", \"policy\": true}";
	assert_int_equal(request_parse_repartition(body, strlen(body), 7, &rr, &err), 0);
	assert_true(rr.policy);
	assert_int_equal(rr.timeout_usec, 7);
	repartition_request_done(&rr);

	assert_string_equal(repartition_refused(""), "a JSON object is required as the body");
	assert_string_equal(repartition_refused("[]"), "the body must be a JSON object");
	assert_non_null(strstr(repartition_refused("{"), "the body is not JSON"));
	assert_string_equal(repartition_refused("{\"device\": \"x\", \"policy\": true, \"p\": 1}"),
			    "unknown key 'p' (known: device, layout, policy, timeout)");
	assert_string_equal(repartition_refused("{\"device\": \"\", \"policy\": true}"),
			    "device: expected a device id, PCI address or UUID");
	assert_non_null(strstr(repartition_refused("{\"device\": \"x\"}"), "give either layout"));
	assert_non_null(strstr(repartition_refused("{\"device\": \"x\", \"policy\": true, "
						   "\"layout\": \"whole: true\"}"),
			       "give either layout"));
	assert_non_null(strstr(repartition_refused("{\"device\": \"x\", \"layout\": \"mig: [\"}"),
			       "layout: line "));
	assert_string_equal(repartition_refused("{\"device\": \"x\", \"policy\": true, "
						"\"timeout\": 5}"),
			    "timeout: expected a duration such as 10m");
}

static void test_allocate(void **state)
{
	struct alloc_request ar = {};
	struct alloc_owner owner = {};
	struct enforce_request enf = {};
	_cleanup_free_ char *err = NULL;
	const char *body = "{\"slices\": [\"a\", \"b\"], \"owner\": {\"pid\": 42}}";

	assert_int_equal(request_parse_allocate(body, strlen(body), &ar, &owner, &enf, &err), 0);
	assert_int_equal(ar.count, 2);
	assert_int_equal(owner.kind, OWNER_PID);
	assert_string_equal(owner.value, "42");
	strv_free(ar.slices);
	request_owner_done(&owner);

	ar = (struct alloc_request){};
	body = "{\"slices\": [\"a\"], \"count\": 2}";
	assert_int_equal(request_parse_allocate(body, strlen(body), &ar, &owner, &enf, &err),
			 -EINVAL);
	assert_string_equal(err, "count differs from the number of slices given");
	strv_free(ar.slices);
	free(err);
	err = NULL;
	/* a NUL inside a name is refused, never taken as a shorter name */
	ar = (struct alloc_request){};
	body = "{\"resource\": \"a\\u0000b\"}";
	assert_int_equal(request_parse_allocate(body, strlen(body), &ar, &owner, &enf, &err),
			 -EINVAL);
	assert_non_null(strstr(err, "the body is not JSON"));
	assert_null(ar.resource);
}

/* POST /v1/allocations' "enforce": its limits, and refused without a process to confine. */
static const char *enforce_refused(const char *body, struct enforce_request *ret)
{
	static char *err;
	struct alloc_request ar = {};
	struct alloc_owner owner = {};
	int r;

	err = mfree(err);
	*ret = (struct enforce_request){};
	r = request_parse_allocate(body, strlen(body), &ar, &owner, ret, &err);
	alloc_request_done(&ar);
	request_owner_done(&owner);
	assert_true(r == 0 || r == -EINVAL);
	return r == 0 ? NULL : err;
}

static void test_allocate_enforce(void **state)
{
	struct enforce_request e;

	assert_null(enforce_refused("{\"resource\": \"r\", \"owner\": {\"pid\": 7}, "
				    "\"enforce\": true}",
				    &e));
	assert_true(e.on);
	assert_int_equal(e.limits.memory_max, 0);
	assert_null(enforce_refused("{\"resource\": \"r\", \"owner\": {\"pid\": 7}, "
				    "\"enforce\": {\"memory_max\": 1073741824, \"cpu_quota\": 250, "
				    "\"cpuset\": true}}",
				    &e));
	assert_true(e.on);
	assert_int_equal(e.limits.memory_max, 1073741824);
	assert_int_equal(e.limits.cpu_quota, 250);
	assert_true(e.limits.numa_cpus);
	assert_null(enforce_refused("{\"resource\": \"r\", \"enforce\": false}", &e));
	assert_false(e.on);
	assert_null(enforce_refused("{\"resource\": \"r\"}", &e));
	assert_false(e.on);

	assert_string_equal(enforce_refused("{\"resource\": \"r\", \"enforce\": true}", &e),
			    "enforce: needs an owner process ({\"pid\": N}), the one moved into "
			    "the grant's cgroup or scope, or an owner unit ({\"unit\": NAME}) that "
			    "systemd confines");
	assert_non_null(strstr(enforce_refused("{\"resource\": \"r\", \"owner\": {\"pod\": "
					       "\"ns/p\"}, \"enforce\": true}",
					       &e),
			       "needs an owner process"));
	assert_null(enforce_refused("{\"resource\": \"r\", \"owner\": {\"unit\": "
				    "\"x.service\"}, \"enforce\": true}",
				    &e));
	assert_true(e.on);
	assert_string_equal(enforce_refused("{\"resource\": \"r\", \"owner\": {\"pid\": 7}, "
					    "\"enforce\": \"yes\"}",
					    &e),
			    "enforce: expected true, false or an object of limits");
	assert_string_equal(enforce_refused("{\"resource\": \"r\", \"owner\": {\"pid\": 7}, "
					    "\"enforce\": {\"memory\": 5}}",
					    &e),
			    "enforce: unknown key 'memory' (known: memory_max, cpu_quota, cpuset)");
	assert_non_null(strstr(enforce_refused("{\"resource\": \"r\", \"owner\": {\"pid\": 7}, "
					       "\"enforce\": {\"cpu_quota\": 0}}",
					       &e),
			       "enforce.cpu_quota"));
	assert_non_null(strstr(enforce_refused("{\"resource\": \"r\", \"owner\": {\"pid\": 7}, "
					       "\"enforce\": {\"memory_max\": 12}}",
					       &e),
			       "enforce.memory_max"));
	assert_false(e.on);
	enforce_refused("{}", &e); /* frees the last reason */
}

static void test_cordon_and_fit(void **state)
{
	struct cordon_request cr = {};
	struct fit_request fr = {};
	_cleanup_free_ char *err = NULL;
	const char *body = "{\"device\": \"x\", \"reason\": \"fan\"}";

	assert_int_equal(request_parse_cordon(body, strlen(body), true, &cr, &err), 0);
	assert_string_equal(cr.reason, "fan");
	cordon_request_done(&cr);
	assert_int_equal(request_parse_cordon(body, strlen(body), false, &cr, &err), -EINVAL);
	assert_string_equal(err, "unknown key 'reason' (known: device)");
	cordon_request_done(&cr);

	body = "{\"kind\": \"gpu\", \"count\": 3}";
	assert_int_equal(request_parse_fit(body, strlen(body), &fr, &err), 0);
	assert_string_equal(fr.kind, "gpu");
	assert_int_equal(fr.count, 3);
	request_fit_done(&fr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repartition),
		cmocka_unit_test(test_allocate),
		cmocka_unit_test(test_allocate_enforce),
		cmocka_unit_test(test_cordon_and_fit),
	};

	partition_schemes_set(backend_partition_schemes);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
