// SPDX-License-Identifier: GPL-2.0-or-later
/* Kernel uevent messages: whatever arrives on the netlink socket or the test socket. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/uevent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	struct uevent ev;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0'; /* on_io() terminates what it received the same way */
	if (uevent_parse(buf, size, &ev) == 0) {
		/* the pointers must stay inside the buffer and be terminated */
		if (ev.action < buf || ev.action >= buf + size + 1 || ev.devpath < buf ||
		    ev.devpath >= buf + size + 1)
			abort();
		(void)uevent_is_relevant(&ev);
	}
	free(buf);
	return 0;
}
