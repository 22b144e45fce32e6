// SPDX-License-Identifier: GPL-2.0-or-later
/* read_full_fd(): whole files and pipes, up to a limit and not a byte beyond it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
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

/* Replaces the file, leaves no temporary file, sets the mode; a temp file is recognised. */
static void test_write_file_atomic(void **unused)
{
	char dir[] = "/tmp/xpu-fileio-XXXXXX", *text = NULL;
	int dfd, fd, n = 0;
	struct stat st;
	struct dirent *de;
	size_t len;
	DIR *d;

	assert_non_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(write_file_atomic_at(dfd, "spec.json", "old\n", 4, 0644), 0);
	assert_int_equal(write_file_atomic_at(dfd, "spec.json", "new content\n", 12, 0640), 0);
	fd = openat(dfd, "spec.json", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read_full_fd(fd, 1024, &text, &len), 0);
	assert_string_equal(text, "new content\n");
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	close(fd);
	free(text);
	d = fdopendir(dup(dfd));
	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 1); /* only spec.json: no temporary file left behind */
	/* a file in a directory that does not exist: an error, nothing left behind */
	assert_int_equal(write_file_atomic_at(dfd, "no/such/dir", "x", 1, 0644), -ENOENT);

	assert_true(is_temp_of(".spec.json.a1B2c3", "spec.json"));
	assert_false(is_temp_of(".spec.json.a1B2c", "spec.json"));
	assert_false(is_temp_of("spec.json.a1B2c3", "spec.json"));
	assert_false(is_temp_of(".spec.jsonXa1B2c3", "spec.json"));
	assert_int_equal(unlinkat(dfd, "spec.json", 0), 0);
	close(dfd);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_full_fd),
		cmocka_unit_test(test_write_file_atomic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
