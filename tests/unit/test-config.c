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

#include "core/config.h"

static int parse(const char *text, struct config *c, char **err)
{
	config_init(c);
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
	assert_int_equal(c.log_level, 7);
	config_done(&c);

	assert_int_equal(parse("nvidia-xid-actions: \"79:reboot-node, 13:reset-gpu\"\n", &c, &err), 0);
	assert_int_equal(c.n_xid_actions, 2);
	assert_int_equal(c.xid_actions[0].xid, 79);
	assert_int_equal(c.xid_actions[0].action, HEALTH_ACTION_REBOOT_NODE);
	assert_int_equal(c.xid_actions[1].action, HEALTH_ACTION_RESET_DEVICE);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_durations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
