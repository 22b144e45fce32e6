// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "macro.h"

static int open_dir_below(const char *root, const char *sub)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", streq(root, "/") ? "" : root, sub) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	return RET_NERRNO(open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

int host_open(const char *root, struct xpu_host **ret)
{
	struct xpu_host *h;
	size_t n;

	if (isempty(root))
		root = "/";
	if (root[0] != '/')
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->root = strdup(root);
	if (!h->root) {
		free(h);
		return -ENOMEM;
	}
	n = strlen(h->root);
	while (n > 1 && h->root[n - 1] == '/')
		h->root[--n] = '\0';
	h->is_real = streq(h->root, "/");
	h->sys_fd = open_dir_below(h->root, "sys");
	h->dev_fd = open_dir_below(h->root, "dev");
	h->proc_fd = open_dir_below(h->root, "proc");
	if (h->sys_fd < 0) {
		int r = h->sys_fd;

		host_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

struct xpu_host *host_free(struct xpu_host *h)
{
	if (!h)
		return NULL;
	safe_close(h->sys_fd);
	safe_close(h->dev_fd);
	safe_close(h->proc_fd);
	free(h->root);
	free(h);
	return NULL;
}

char *host_dev_path(const char *devname)
{
	char *s;

	if (asprintf(&s, "/dev/%s", devname) < 0)
		return NULL;
	return s;
}
