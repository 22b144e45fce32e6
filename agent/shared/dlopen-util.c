// SPDX-License-Identifier: GPL-2.0-or-later
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "shared/dlopen-util.h"
#include "shared/macro.h"

int dlopen_many(const char *path, const struct dlsym_spec *syms, size_t n, void **ret_handle,
		char **ret_reason)
{
	void *h;

	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();

		if (ret_reason && asprintf(ret_reason, "%s", e ?: path) < 0)
			*ret_reason = NULL;
		return -ENOENT;
	}
	for (size_t i = 0; i < n; i++) {
		*syms[i].fn = dlsym(h, syms[i].name);
		if (!*syms[i].fn && !syms[i].optional) {
			if (ret_reason &&
			    asprintf(ret_reason, "%s lacks the symbol %s", path, syms[i].name) < 0)
				*ret_reason = NULL;
			dlclose(h);
			return -ENXIO;
		}
	}
	*ret_handle = h;
	return 0;
}
