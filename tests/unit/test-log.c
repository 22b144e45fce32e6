// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What reaches the journal: the message with the device's fields and any extra fields (the
 * health phase and signal of a health change), so that `journalctl XPU_HEALTH_PHASE=probation`
 * finds them. The journal is a datagram socket we bind at its well-known path inside a private
 * mount namespace (skipped where one cannot be made).
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/log.h"

static int journal_fd = -1;

/* A private /run with a listening /run/systemd/journal/socket, or skip. */
static int setup(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX,
				   .sun_path = "/run/systemd/journal/socket" };

	if (unshare(CLONE_NEWNS) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return 0;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0)
		return 0;
	if (mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0)
		return 0;
	journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (journal_fd < 0 || bind(journal_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		journal_fd = -1;
	return 0;
}

/* The next entry, as the native protocol's "KEY=value\n" lines. */
static void next_entry(char *buf, size_t size)
{
	ssize_t n = recv(journal_fd, buf, size - 1, MSG_DONTWAIT);

	assert_true(n > 0);
	buf[n] = '\0';
}

static void test_device_fields(void **state)
{
	const char *const fields[] = { "XPU_HEALTH_PHASE=probation", "XPU_HEALTH_SIGNAL=probe-ok",
				       NULL };
	char buf[8192];

	if (journal_fd < 0)
		skip();
	log_setup(LOG_TARGET_JOURNAL);
	log_set_max_level(LOG_INFO);

	log_device_fields_errno(LOG_NOTICE, 0, "0000:18:00.0", "0000:18:00.0", fields,
				"Device %s is probation.", "0000:18:00.0");
	next_entry(buf, sizeof(buf));
	assert_non_null(strstr(buf, "MESSAGE=Device 0000:18:00.0 is probation.\n"));
	assert_non_null(strstr(buf, "PRIORITY=5\n"));
	assert_non_null(strstr(buf, "XPU_DEVICE=0000:18:00.0\n"));
	assert_non_null(strstr(buf, "XPU_PCI=0000:18:00.0\n"));
	assert_non_null(strstr(buf, "XPU_HEALTH_PHASE=probation\n"));
	assert_non_null(strstr(buf, "XPU_HEALTH_SIGNAL=probe-ok\n"));

	/* the other log calls carry what they carried before, and no health fields */
	log_device_full_errno(LOG_INFO, ENODEV, "0000:2a:00.0", NULL, "Device %s gone: %m",
			      "0000:2a:00.0");
	next_entry(buf, sizeof(buf));
	assert_non_null(strstr(buf, "XPU_DEVICE=0000:2a:00.0\n"));
	assert_non_null(strstr(buf, "ERRNO=19\n"));
	assert_null(strstr(buf, "XPU_HEALTH_"));
	/* filtered by level: nothing sent */
	log_device_fields_errno(LOG_DEBUG, 0, "0000:18:00.0", NULL, fields, "quiet");
	assert_int_equal(recv(journal_fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	log_setup(LOG_TARGET_STDERR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_fields),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
