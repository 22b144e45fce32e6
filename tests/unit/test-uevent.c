// SPDX-License-Identifier: GPL-2.0-or-later
/* Parsing kernel uevent messages, as they arrive on the netlink socket. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/uevent.h"

/* Builds "header\0k=v\0..." from a '|'-separated string into @buf; returns the length. */
static size_t msg(char *buf, const char *text)
{
	size_t n = strlen(text);

	memcpy(buf, text, n + 1);
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '|')
			buf[i] = '\0';
	return n;
}

static void test_parse_kernel_message(void **state)
{
	char buf[512];
	struct uevent ev;
	size_t n = msg(buf, "add@/devices/pci0000:17/0000:17:00.0|ACTION=add|"
			    "DEVPATH=/devices/pci0000:17/0000:17:00.0|SUBSYSTEM=pci|SEQNUM=4711");

	assert_int_equal(uevent_parse(buf, n, &ev), 0);
	assert_string_equal(ev.action, "add");
	assert_string_equal(ev.devpath, "/devices/pci0000:17/0000:17:00.0");
	assert_string_equal(ev.subsystem, "pci");
	assert_true(uevent_is_relevant(&ev));
}

static void test_reject_bad_messages(void **state)
{
	char buf[512];
	struct uevent ev;
	size_t n;

	/* udev's own messages start with a magic header */
	n = msg(buf, "libudev|xxxx");
	assert_int_equal(uevent_parse(buf, n, &ev), -EINVAL);
	/* header and keys disagree */
	n = msg(buf, "add@/devices/a|ACTION=remove|DEVPATH=/devices/a|SUBSYSTEM=pci");
	assert_int_equal(uevent_parse(buf, n, &ev), -EINVAL);
	n = msg(buf, "add@/devices/a|ACTION=add|DEVPATH=/devices/b");
	assert_int_equal(uevent_parse(buf, n, &ev), -EINVAL);
	/* missing DEVPATH */
	n = msg(buf, "add@/devices/a|ACTION=add");
	assert_int_equal(uevent_parse(buf, n, &ev), -EINVAL);
	/* no '@' */
	n = msg(buf, "garbage");
	assert_int_equal(uevent_parse(buf, n, &ev), -EINVAL);
	assert_int_equal(uevent_parse(buf, 0, &ev), -EINVAL);
}

static void test_relevance(void **state)
{
	struct uevent net = { "add", "/devices/virtual/net/veth0", "net" };
	struct uevent drm = { "add", "/devices/platform/gpu/drm/renderD128", "drm" };
	struct uevent bind = { "bind", "/devices/pci0000:00/0000:00:06.0", "pci" };

	assert_false(uevent_is_relevant(&net));
	assert_true(uevent_is_relevant(&drm));
	assert_true(uevent_is_relevant(&bind));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_kernel_message),
		cmocka_unit_test(test_reject_bad_messages),
		cmocka_unit_test(test_relevance),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
