// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /dev/kmsg records and the NVIDIA driver's XID reports in them: whatever a read() of the
 * kernel's log returns, in a buffer of exactly its size (not NUL-terminated, as read() leaves it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/nvidia-kmsg.h"
#include "shared/kmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_xid(const char *msg, size_t len)
{
	struct nvidia_xid_line x;

	if (nvidia_kmsg_parse_xid(msg, len, &x) < 0)
		return;
	/* the strings are terminated inside their fields; an instance only with its GPU */
	if (strnlen(x.pci, sizeof(x.pci)) != sizeof(x.pci) - 1 ||
	    strnlen(x.process, sizeof(x.process)) == sizeof(x.process) ||
	    strnlen(x.text, sizeof(x.text)) == sizeof(x.text) || (x.has_ci && !x.has_gi) ||
	    x.pid < -1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ?: 1);
	struct kmsg_record rec;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (kmsg_parse_record(buf, size, &rec) == 0) {
		const char *v;
		size_t n;

		if (rec.msg < buf || rec.msg + rec.msg_len > buf + size || rec.dict < buf ||
		    rec.dict + rec.dict_len > buf + size || rec.level > 7 || rec.facility > 255)
			abort();
		if (kmsg_record_get(&rec, "DEVICE", &v, &n) == 0 &&
		    (v < rec.dict || v + n > rec.dict + rec.dict_len))
			abort();
		check_xid(rec.msg, rec.msg_len);
	}
	/* the message alone, as a reader hands it over */
	check_xid(buf, size);
	free(buf);
	return 0;
}
