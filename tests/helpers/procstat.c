// SPDX-License-Identifier: GPL-2.0-or-later
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procstat.h"
#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"

int test_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

long test_proc_rss_kib(pid_t pid)
{
	_cleanup_free_ char *text = NULL;
	char path[64];
	const char *p;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = read_attr_at(AT_FDCWD, path, 1 << 16, &text);
	if (r < 0)
		return r;
	p = strstr(text, "\nVmRSS:");
	if (!p)
		return -ENODATA;
	return strtol(p + strlen("\nVmRSS:"), NULL, 10);
}

long long test_proc_cpu_ticks(pid_t pid)
{
	_cleanup_free_ char *text = NULL;
	unsigned long long utime, stime;
	char path[64];
	const char *p;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_attr_at(AT_FDCWD, path, 1 << 16, &text);
	if (r < 0)
		return r;
	/* the command name may hold spaces and parentheses: the fields start after the last ')' */
	p = strrchr(text, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
			 &stime) != 2)
		return -EBADMSG;
	return (long long)(utime + stime);
}

int test_proc_wait_fds(pid_t pid, int want, int timeout_ms)
{
	long long deadline = test_now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = test_proc_fds(pid);
		if (n == want || n < 0 || test_now_ms() >= deadline)
			return n;
		usleep(20000);
	}
}

char *test_proc_fd_list(pid_t pid)
{
	char path[64], *out = NULL;
	size_t len = 0;
	struct dirent *de;
	FILE *f = open_memstream(&out, &len);
	DIR *d;

	if (!f)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		char link[320], target[256];
		ssize_t k;

		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
		k = readlink(link, target, sizeof(target) - 1);
		target[k > 0 ? k : 0] = '\0';
		fprintf(f, "%s -> %s\n", de->d_name, target);
	}
	if (d)
		closedir(d);
	fclose(f);
	return out;
}
