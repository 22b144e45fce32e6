/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a process holds, read from /proc: the resource figures the fault and soak tests compare
 * before and after a load. Each returns -errno when the process is gone or /proc is unreadable.
 */
#pragma once

#include <sys/types.h>

/* The number of open file descriptors of @pid (entries of /proc/PID/fd). */
int test_proc_fds(pid_t pid);
/* VmRSS of @pid in KiB. */
long test_proc_rss_kib(pid_t pid);
/* User plus system CPU time of @pid in clock ticks (sysconf(_SC_CLK_TCK) per second). */
long long test_proc_cpu_ticks(pid_t pid);
/* Waits up to @timeout_ms for @pid to hold exactly @want descriptors; returns the last count.
 * Connections a client closed are closed by the server a moment later, not at once. */
int test_proc_wait_fds(pid_t pid, int want, int timeout_ms);
/* "fd -> target" lines of @pid's descriptors (malloc'd), for failure messages. */
char *test_proc_fd_list(pid_t pid);
