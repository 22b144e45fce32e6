// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fault.h"

static const char *context;

void fault_context(const char *operation)
{
	context = operation;
}

void fault_point(const char *name)
{
	static const char *at;
	static int initialised;
	size_t n;

	if (!initialised) {
		at = secure_getenv("XPU_FAULT_KILL_AT");
		initialised = 1;
	}
	if (!at)
		return;
	if (strcmp(at, name) == 0)
		raise(SIGKILL);
	n = context ? strlen(context) : 0;
	if (n && strncmp(at, context, n) == 0 && at[n] == '/' && strcmp(at + n + 1, name) == 0)
		raise(SIGKILL);
}

int fault_error(const char *name)
{
	const char *at = secure_getenv("XPU_FAULT_FAIL_AT");

	return at && strcmp(at, name) == 0 ? -EAGAIN : 0;
}
