// SPDX-License-Identifier: GPL-2.0-or-later
/* read_full_fd(): whole files and pipes, up to a limit and not a byte beyond it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"

/* A pipe holding @n bytes of a known pattern, its write end closed. */
static int pipe_with(size_t n)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	for (size_t i = 0; i < n; i++) {
		char c = (char)('a' + i % 26);

		assert_int_equal(write(p[1], &c, 1), 1);
	}
	close(p[1]);
	return p[0];
}

static void test_read_full_fd(void **unused)
{
	char *buf = NULL;
	size_t len = 0;
	int fd;

	/* larger than the first guess (4096): the buffer grows */
	fd = pipe_with(10000);
	assert_int_equal(read_full_fd(fd, 20000, &buf, &len), 0);
	assert_int_equal(len, 10000);
	assert_int_equal(buf[9999], 'a' + 9999 % 26);
	assert_int_equal(buf[10000], '\0');
	free(buf);
	close(fd);

	/* exactly the limit is fine, one byte more is not */
	fd = pipe_with(5000);
	assert_int_equal(read_full_fd(fd, 5000, &buf, &len), 0);
	assert_int_equal(len, 5000);
	free(buf);
	close(fd);
	fd = pipe_with(5001);
	buf = NULL;
	assert_int_equal(read_full_fd(fd, 5000, &buf, &len), -EFBIG);
	assert_null(buf);
	close(fd);

	/* nothing at all */
	fd = pipe_with(0);
	assert_int_equal(read_full_fd(fd, 10, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_full_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
