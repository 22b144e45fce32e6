/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Loading vendor libraries at run time: every symbol is resolved at once, so a library is
 * either usable or reported unusable with a reason, never half-bound later.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct dlsym_spec {
	void **fn;	  /* where the address goes; set to NULL for a missing optional symbol */
	const char *name; /* the exported (versioned) symbol name */
	bool optional;	  /* missing: the feature that needs it is off, the library still loads */
};

/*
 * dlopen()s @path (RTLD_NOW | RTLD_LOCAL) and resolves @n symbols. Returns 0 and the handle, or
 * -ENOENT / -ENXIO (a required symbol is missing) with a malloc'd one-line reason naming the
 * library and symbol. Does not log.
 */
int dlopen_many(const char *path, const struct dlsym_spec *syms, size_t n, void **ret_handle,
		char **ret_reason);
