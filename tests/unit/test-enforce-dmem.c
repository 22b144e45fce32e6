// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Device memory limits (the dmem cgroup controller, Linux 6.14+) for a grant's memory shares:
 * the dmem.max lines from the root's dmem.capacity (services/enforce-rules.c), and their write
 * into a cgroup, on a fake cgroup tree (the kernels the tests run on lack the controller).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "services/enforce.h"
#include "shared/fileio.h"
#include "shared/macro.h"
#include "shared/strv.h"

#define CAPACITY                                                                                   \
	"drm/0000:03:00.0/vram0 17163091968\n"                                                     \
	"drm/0000:04:00.0/vram0 17163091968\n"                                                     \
	"drm/0000:04:00.0/vram1 1073741824\n"

static void test_lines(void **state)
{
	_cleanup_strv_free_ char **lines = NULL;

	(void)state;
	assert_int_equal(enforce_dmem_lines(CAPACITY, "0000:03:00.0", 4ULL << 30, &lines), 0);
	assert_int_equal(strv_length(lines), 1);
	assert_string_equal(lines[0], "drm/0000:03:00.0/vram0 4294967296");
	lines = strv_free(lines);

	/* every region of the device, none of another's */
	assert_int_equal(enforce_dmem_lines(CAPACITY, "0000:04:00.0", 1 << 20, &lines), 0);
	assert_int_equal(strv_length(lines), 2);
	assert_string_equal(lines[0], "drm/0000:04:00.0/vram0 1048576");
	assert_string_equal(lines[1], "drm/0000:04:00.0/vram1 1048576");
	lines = strv_free(lines);

	/* a device the controller does not know, or no capacity at all: nothing */
	assert_int_equal(enforce_dmem_lines(CAPACITY, "0000:05:00.0", 1 << 20, &lines), 0);
	assert_null(lines);
	assert_int_equal(enforce_dmem_lines("", "0000:03:00.0", 1 << 20, &lines), 0);
	assert_null(lines);
	/* a prefix of another address is not that device */
	assert_int_equal(enforce_dmem_lines(CAPACITY, "0000:03:00", 1 << 20, &lines), 0);
	assert_null(lines);
}

static char *put(const char *dir, const char *file, const char *text)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, file) > 0);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* A cgroup with dmem.max gets the share's size for its device's region; one without, nothing. */
static void test_set(void **state)
{
	char tmpl[] = "/tmp/xpu-dmem-XXXXXX";
	_cleanup_free_ char *max = NULL, *text = NULL, *err = NULL, *cmd = NULL;

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	max = put(tmpl, "dmem.max", "drm/0000:03:00.0/vram0 max\n");
	assert_int_equal(enforce_dmem_set(tmpl, CAPACITY, "0000:03:00.0", 4ULL << 30, &err), 1);
	assert_int_equal(read_attr_at(AT_FDCWD, max, 4096, &text), 0);
	assert_string_equal(text, "drm/0000:03:00.0/vram0 4294967296");
	text = mfree(text);

	/* not a device the controller has: dmem.max as it was */
	assert_int_equal(enforce_dmem_set(tmpl, CAPACITY, "0000:05:00.0", 1 << 20, &err), 0);
	assert_int_equal(read_attr_at(AT_FDCWD, max, 4096, &text), 0);
	assert_string_equal(text, "drm/0000:03:00.0/vram0 4294967296");

	/* a kernel without the controller: no dmem.max, nothing written, nothing made */
	assert_int_equal(unlink(max), 0);
	assert_int_equal(enforce_dmem_set(tmpl, CAPACITY, "0000:03:00.0", 1 << 20, &err), 0);
	assert_int_equal(access(max, F_OK), -1);

	assert_true(asprintf(&cmd, "rm -rf '%s'", tmpl) > 0);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
