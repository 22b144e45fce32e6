// SPDX-License-Identifier: GPL-2.0-or-later
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fault.h"

void fault_point(const char *name)
{
	static const char *at;
	static int initialised;

	if (!initialised) {
		at = secure_getenv("XPU_FAULT_KILL_AT");
		initialised = 1;
	}
	if (at && strcmp(at, name) == 0)
		raise(SIGKILL);
}
