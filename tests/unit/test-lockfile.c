// SPDX-License-Identifier: GPL-2.0-or-later
/* lockfile_take(): a second taker is refused and told the holder's PID. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/lockfile.h"
#include "shared/macro.h"

static void test_parse_holder(void **unused)
{
	static const char locks[] = "1: POSIX  ADVISORY  WRITE 6347 fe:00:5328497 0 EOF\n"
				    "2: FLOCK  ADVISORY  WRITE 77 fe:00:42 0 EOF\n"
				    "2: -> FLOCK  ADVISORY  WRITE 78 fe:00:43 0 EOF\n"
				    "3: FLOCK  ADVISORY  WRITE 99 00:3a:43 0 EOF\n";
	pid_t pid = 0;

	assert_int_equal(lockfile_parse_holder(locks, 0xfe, 0, 42, &pid), 0);
	assert_int_equal(pid, 77);
	assert_int_equal(lockfile_parse_holder(locks, 0, 0x3a, 43, &pid), 0);
	assert_int_equal(pid, 99);
	/* a POSIX lock, another device, a waiter: not a holder */
	assert_int_equal(lockfile_parse_holder(locks, 0xfe, 0, 5328497, &pid), -ESRCH);
	assert_int_equal(lockfile_parse_holder(locks, 0xfe, 1, 42, &pid), -ESRCH);
	assert_int_equal(lockfile_parse_holder("", 0xfe, 0, 42, &pid), -ESRCH);
}

static void test_take(void **unused)
{
	char dir[] = "/tmp/xpu-lock-XXXXXX", path[64];
	int fd, fd2, p[2], ready[2], status;
	pid_t holder = 0, child;
	char c;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/x.lock", dir);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* holds the lock until the test closes the pipe */
		fd = lockfile_take(path, LOCKFILE_CREATE, NULL);
		fd2 = lockfile_take(dir, 0, NULL);
		if (fd < 0 || fd2 < 0)
			_exit(1);
		close(p[1]);
		close(ready[0]);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	close(ready[1]);
	/* the child holds both */
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(lockfile_take(path, LOCKFILE_CREATE, &holder), -EBUSY);
	assert_int_equal(holder, child);
	holder = 0;
	assert_int_equal(lockfile_take(dir, 0, &holder), -EBUSY);
	assert_int_equal(holder, child);
	close(p[1]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(status, 0);
	/* the holder is gone: the lock is free, and its PID is ours now */
	fd = lockfile_take(path, LOCKFILE_CREATE, &holder);
	assert_true(fd >= 0);
	{
		_cleanup_free_ char *text = NULL;
		char want[32];

		snprintf(want, sizeof(want), "%d", (int)getpid());
		assert_int_equal(read_attr_at(AT_FDCWD, path, 0, &text), 0);
		assert_string_equal(text, want);
	}
	close(fd);
	/* a directory where a lock file should be is refused */
	assert_int_equal(lockfile_take(dir, LOCKFILE_CREATE, NULL), -EISDIR);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_holder),
		cmocka_unit_test(test_take),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
