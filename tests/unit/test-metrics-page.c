// SPDX-License-Identifier: GPL-2.0-or-later
/* The metrics page's pure parts: label values escaped as both formats want them, and the format
 * an Accept header asks for (api/metrics-page.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "api/metrics.h"

static void expect_escaped(const char *in, const char *out)
{
	char *s = metrics_escape_label(in);

	assert_non_null(s);
	assert_string_equal(s, out);
	free(s);
}

static void test_escape(void **state)
{
	expect_escaped("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3");
	expect_escaped("", "");
	/* the three the formats escape */
	expect_escaped("a \"b\" c", "a \\\"b\\\" c");
	expect_escaped("C:\\cards", "C:\\\\cards");
	expect_escaped("line 1\nline 2\n", "line 1\\nline 2\\n");
	/* UTF-8 passes; what is not UTF-8 becomes U+FFFD, one per byte */
	expect_escaped("Gr\xc3\xbc\xc3\x9f", "Gr\xc3\xbc\xc3\x9f");
	expect_escaped("bad \xff\xfe!", "bad \xef\xbf\xbd\xef\xbf\xbd!");
	expect_escaped("cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd");
	expect_escaped("overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd");
	expect_escaped("surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

static void test_negotiate(void **state)
{
	assert_int_equal(metrics_negotiate(NULL), METRICS_TEXT);
	assert_int_equal(metrics_negotiate("*/*"), METRICS_TEXT);
	assert_int_equal(metrics_negotiate("text/plain"), METRICS_TEXT);
	/* Prometheus 2's header */
	assert_int_equal(metrics_negotiate("application/openmetrics-text;version=1.0.0,application/"
					   "openmetrics-text;version=0.0.1;q=0.75,text/plain;"
					   "version=0.0.4;q=0.5,*/*;q=0.1"),
			 METRICS_OPENMETRICS);
	assert_int_equal(metrics_negotiate("application/openmetrics-text"), METRICS_OPENMETRICS);
	assert_int_equal(metrics_negotiate("Application/OpenMetrics-Text; version=1.0.0"),
			 METRICS_OPENMETRICS);
	assert_int_equal(metrics_negotiate("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
			 METRICS_TEXT);
	assert_int_equal(metrics_negotiate("application/openmetrics-text;q=0"), METRICS_TEXT);
	assert_int_equal(metrics_negotiate("application/json"), METRICS_TEXT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_negotiate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
