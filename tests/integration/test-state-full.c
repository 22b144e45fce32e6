// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A full state disk: the owner of an allocation exits while the state cannot be saved. The
 * release is pending (the API and xpuctl say so) and is saved once there is space again,
 * without a restart. Needs root for a small tmpfs as the state directory; skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"

#define GPU "nvidia.com/gpu"

static char mnt[4200];

static int unmount(void **state)
{
	if (mnt[0])
		(void)umount2(mnt, MNT_DETACH);
	mnt[0] = '\0';
	return 0;
}

/* Fills the file system of @dir with @dir/filler until it is full. */
static void fill(const char *dir)
{
	static char block[65536];
	char path[4300];
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	memset(block, 'x', sizeof(block));
	for (;;) {
		ssize_t k = write(fd, block, sizeof(block));

		if (k < 0) {
			assert_int_equal(errno, ENOSPC);
			break;
		}
	}
	/* and the last partial page */
	while (write(fd, block, 1) == 1)
		;
	close(fd);
}

/* The allocation @id in GET /v1/allocations (a new reference), or NULL. */
static json_t *find_allocation(struct test_xpud *x, const char *id)
{
	json_t *doc = NULL, *a, *found = NULL;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/allocations", &doc), 200);
	json_array_foreach(json_object_get(doc, "allocations"), i, a)
		if (strcmp(json_string_value(json_object_get(a, "id")), id) == 0)
			found = json_incref(a);
	json_decref(doc);
	return found;
}

static void test_release_retried(void **state)
{
	char *root = test_fixture_new("hgx-h100"), states[4300], body[256], path[4400];
	const char *args[] = { "--state-dir", states, NULL };
	const char *list[] = { "allocations", NULL };
	_cleanup_free_ char *id = NULL, *out = NULL, *text = NULL;
	struct test_xpud *x;
	long long deadline;
	json_t *doc = NULL, *a;
	pid_t owner;

	snprintf(mnt, sizeof(mnt), "%s/statefs", root);
	assert_int_equal(mkdir(mnt, 0755), 0);
	if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") < 0) {
		mnt[0] = '\0';
		skip();
	}
	snprintf(states, sizeof(states), "%s/xpud", mnt);
	x = test_xpud_start_nvml(root, args, NULL);

	owner = fork();
	assert_true(owner >= 0);
	if (owner == 0) {
		pause();
		_exit(0);
	}
	snprintf(body, sizeof(body), "{\"resource\": \"" GPU "\", \"owner\": {\"pid\": %d}}",
		 (int)owner);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 201);
	id = strdup(json_string_value(json_object_get(doc, "id")));
	json_decref(doc);
	a = find_allocation(x, id);
	assert_non_null(a);
	assert_true(json_is_false(json_object_get(a, "release_pending")));
	json_decref(a);

	/* the disk fills up, then the owner exits: the release cannot be saved */
	fill(mnt);
	kill(owner, SIGKILL);
	waitpid(owner, NULL, 0);
	deadline = test_now_ms() + 10000;
	for (;;) {
		bool pending;

		a = find_allocation(x, id);
		assert_non_null(a); /* kept: what is on disk still holds it */
		pending = json_is_true(json_object_get(a, "release_pending"));
		json_decref(a);
		if (pending)
			break;
		if (test_now_ms() > deadline)
			fail_msg("allocation %s never showed release_pending", id);
		usleep(50 * 1000);
	}
	assert_int_equal(test_xpuctl(x->socket, list, &out), 0);
	if (!strstr(out, "release pending"))
		fail_msg("xpuctl allocations says:\n%s", out);

	/* space returns: the release is saved without anybody asking */
	snprintf(path, sizeof(path), "%s/filler", mnt);
	assert_int_equal(unlink(path), 0);
	deadline = test_now_ms() + 20000;
	while ((a = find_allocation(x, id))) {
		json_decref(a);
		if (test_now_ms() > deadline)
			fail_msg("the pending release of %s was never retried", id);
		usleep(100 * 1000);
	}
	snprintf(path, sizeof(path), "%s/state.json", states);
	assert_int_equal(read_attr_at(AT_FDCWD, path, 1 << 20, &text), 0);
	assert_null(strstr(text, id));
	assert_true(test_xpud_log_contains(x, "the pending release is saved now"));
	assert_int_equal(test_xpud_stop(x), 0);
	unmount(NULL); /* before the tree is removed */
	test_xpud_free(x);
}

/*
 * The owner exits while xpud is stopped, and the disk is full when it starts again: it starts
 * (a full disk must not keep the node's agent down), the release pending until there is space.
 */
static void test_start_with_full_disk(void **state)
{
	char *root = test_fixture_new("hgx-h100"), states[4300], body[256], path[4400];
	const char *args[] = { "--state-dir", states, NULL };
	_cleanup_free_ char *id = NULL;
	struct test_xpud *x;
	long long deadline;
	json_t *doc = NULL, *a;
	pid_t owner;

	snprintf(mnt, sizeof(mnt), "%s/statefs", root);
	assert_int_equal(mkdir(mnt, 0755), 0);
	if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") < 0) {
		mnt[0] = '\0';
		skip();
	}
	snprintf(states, sizeof(states), "%s/xpud", mnt);
	x = test_xpud_start_nvml(root, args, NULL);
	owner = fork();
	assert_true(owner >= 0);
	if (owner == 0) {
		pause();
		_exit(0);
	}
	snprintf(body, sizeof(body), "{\"resource\": \"" GPU "\", \"owner\": {\"pid\": %d}}",
		 (int)owner);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 201);
	id = strdup(json_string_value(json_object_get(doc, "id")));
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	root = test_xpud_take_root(x);
	test_xpud_free(x);

	kill(owner, SIGKILL);
	waitpid(owner, NULL, 0);
	fill(mnt);
	x = test_xpud_start_nvml(root, args, NULL);
	a = find_allocation(x, id);
	assert_non_null(a);
	assert_true(json_is_true(json_object_get(a, "release_pending")));
	json_decref(a);

	snprintf(path, sizeof(path), "%s/filler", mnt);
	assert_int_equal(unlink(path), 0);
	deadline = test_now_ms() + 20000;
	while ((a = find_allocation(x, id))) {
		json_decref(a);
		if (test_now_ms() > deadline)
			fail_msg("the pending release of %s was never retried", id);
		usleep(100 * 1000);
	}
	assert_int_equal(test_xpud_stop(x), 0);
	unmount(NULL); /* before the tree is removed */
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_release_retried, unmount),
		cmocka_unit_test_teardown(test_start_with_full_disk, unmount),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
