/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host as xpud sees it: one root prefix and directory fds for /sys, /dev, /proc and /run
 * below it, opened once. "/" on a real node; a generated tree in tests and --simulate.
 */
#pragma once

#include <stdbool.h>

struct xpu_host {
	char *root;   /* "/" or an absolute prefix without trailing slash */
	int sys_fd;   /* <root>/sys; required */
	int dev_fd;   /* <root>/dev; -EBADF if absent */
	int proc_fd;  /* <root>/proc; -EBADF if absent */
	bool is_real; /* root is "/": the kernel's uevents describe this tree */
};

/*
 * Opens the host's directories below @root (NULL means "/"). Returns 0, -ENOENT when
 * <root>/sys does not exist, or another -errno. Does not log.
 */
int host_open(const char *root, struct xpu_host **ret);
struct xpu_host *host_free(struct xpu_host *h);

/* The host path of a device node, e.g. "dri/renderD128" -> "/dev/dri/renderD128" (as seen on
 * the host, never prefixed with the root). Caller frees. */
char *host_dev_path(const char *devname);
