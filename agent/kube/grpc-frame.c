// SPDX-License-Identifier: GPL-2.0-or-later
/* gRPC's message framing, timeouts and status messages; see grpc-frame.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/grpc-frame.h"
#include "shared/macro.h"

const char *grpc_status_to_string(int status)
{
	static const char *const names[] = {
		[GRPC_STATUS_OK] = "OK",
		[GRPC_STATUS_CANCELLED] = "CANCELLED",
		[GRPC_STATUS_UNKNOWN] = "UNKNOWN",
		[GRPC_STATUS_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
		[GRPC_STATUS_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
		[GRPC_STATUS_NOT_FOUND] = "NOT_FOUND",
		[GRPC_STATUS_ALREADY_EXISTS] = "ALREADY_EXISTS",
		[GRPC_STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
		[GRPC_STATUS_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
		[GRPC_STATUS_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
		[GRPC_STATUS_ABORTED] = "ABORTED",
		[GRPC_STATUS_OUT_OF_RANGE] = "OUT_OF_RANGE",
		[GRPC_STATUS_UNIMPLEMENTED] = "UNIMPLEMENTED",
		[GRPC_STATUS_INTERNAL] = "INTERNAL",
		[GRPC_STATUS_UNAVAILABLE] = "UNAVAILABLE",
		[GRPC_STATUS_DATA_LOSS] = "DATA_LOSS",
		[GRPC_STATUS_UNAUTHENTICATED] = "UNAUTHENTICATED",
	};

	if (status < 0 || (size_t)status >= ELEMENTSOF(names))
		return "UNKNOWN";
	return names[status];
}

int grpc_frame_header(uint8_t out[GRPC_FRAME_HEADER_SIZE], size_t len)
{
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	return 0;
}

int grpc_frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **ret_msg,
		    size_t *ret_len, size_t *ret_used)
{
	size_t len;

	if (n < 1)
		return 0;
	if (p[0] == 1)
		return -EPROTONOSUPPORT;
	if (p[0] != 0)
		return -EBADMSG;
	if (n < GRPC_FRAME_HEADER_SIZE)
		return 0;
	len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | (size_t)p[4];
	if (len > max)
		return -EMSGSIZE;
	if (n - GRPC_FRAME_HEADER_SIZE < len)
		return 0;
	*ret_msg = p + GRPC_FRAME_HEADER_SIZE;
	*ret_len = len;
	*ret_used = GRPC_FRAME_HEADER_SIZE + len;
	return 1;
}

int grpc_frame_single(const uint8_t *p, size_t n, size_t max, const uint8_t **ret_msg,
		      size_t *ret_len)
{
	const uint8_t *msg;
	size_t len, used;
	int r;

	r = grpc_frame_next(p, n, max, &msg, &len, &used);
	if (r < 0)
		return r;
	if (r == 0 || used != n)
		return -EBADMSG;
	*ret_msg = msg;
	*ret_len = len;
	return 0;
}

int grpc_timeout_parse(const char *s, uint64_t *ret_usec)
{
	uint64_t v = 0, mul, div = 1;
	size_t n = 0;

	if (!s)
		return -EINVAL;
	for (; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n >= 8)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	if (n == 0 || s[n] == '\0' || s[n + 1] != '\0')
		return -EINVAL;
	switch (s[n]) {
	case 'H':
		mul = 3600ULL * 1000000ULL;
		break;
	case 'M':
		mul = 60ULL * 1000000ULL;
		break;
	case 'S':
		mul = 1000000ULL;
		break;
	case 'm':
		mul = 1000ULL;
		break;
	case 'u':
		mul = 1;
		break;
	case 'n':
		mul = 1;
		div = 1000;
		break;
	default:
		return -EINVAL;
	}
	/* 8 digits of hours is about 3.6e17 us: fits, but keep the check honest. */
	if (v > UINT64_MAX / mul)
		*ret_usec = UINT64_MAX;
	else
		*ret_usec = (v * mul + div - 1) / div;
	return 0;
}

char *grpc_timeout_format(uint64_t usec, char buf[static 10])
{
	static const struct {
		uint64_t usec;
		char unit;
	} units[] = { { 1, 'u' }, { 1000, 'm' }, { 1000000, 'S' }, { 60000000, 'M' },
		      { 3600000000ULL, 'H' } };

	for (size_t i = 0; i < ELEMENTSOF(units); i++) {
		/* round up: a deadline must never come earlier than asked */
		uint64_t v = usec / units[i].usec + (usec % units[i].usec != 0);

		if (v <= 99999999 || i == ELEMENTSOF(units) - 1) {
			snprintf(buf, 10, "%llu%c", (unsigned long long)MIN(v, 99999999ULL),
				 units[i].unit);
			return buf;
		}
	}
	return buf; /* not reached */
}

char *grpc_message_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *grpc_message_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '%' && i + 2 < len && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
			c = (char)(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
			i += 2;
		}
		if (c != '\0')
			*o++ = c;
	}
	*o = '\0';
	return out;
}
