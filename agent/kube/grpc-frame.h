/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pure part of our gRPC layer (see grpc.h): the 5-byte message framing of gRPC over
 * HTTP/2 (one flag byte, 0 = uncompressed, then the length as a big-endian 32-bit number),
 * the grpc-timeout header, and the percent-encoding of grpc-message. No I/O, no allocation
 * except where stated; fuzzed (tests/fuzz/fuzz-grpc.c).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define GRPC_FRAME_HEADER_SIZE 5U
/* gRPC's own default for received messages. */
#define GRPC_MAX_MESSAGE_DEFAULT (4U * 1024U * 1024U)

/* The status codes of the gRPC protocol (grpc-status trailer). */
enum grpc_status {
	GRPC_STATUS_OK = 0,
	GRPC_STATUS_CANCELLED = 1,
	GRPC_STATUS_UNKNOWN = 2,
	GRPC_STATUS_INVALID_ARGUMENT = 3,
	GRPC_STATUS_DEADLINE_EXCEEDED = 4,
	GRPC_STATUS_NOT_FOUND = 5,
	GRPC_STATUS_ALREADY_EXISTS = 6,
	GRPC_STATUS_PERMISSION_DENIED = 7,
	GRPC_STATUS_RESOURCE_EXHAUSTED = 8,
	GRPC_STATUS_FAILED_PRECONDITION = 9,
	GRPC_STATUS_ABORTED = 10,
	GRPC_STATUS_OUT_OF_RANGE = 11,
	GRPC_STATUS_UNIMPLEMENTED = 12,
	GRPC_STATUS_INTERNAL = 13,
	GRPC_STATUS_UNAVAILABLE = 14,
	GRPC_STATUS_DATA_LOSS = 15,
	GRPC_STATUS_UNAUTHENTICATED = 16,
};

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN" for anything else. Never NULL. */
const char *grpc_status_to_string(int status);

/* Writes the 5-byte header of an uncompressed message of @len bytes. -EMSGSIZE above 4 GiB-1. */
int grpc_frame_header(uint8_t out[GRPC_FRAME_HEADER_SIZE], size_t len);

/*
 * Looks at the first message framed in @p (@n bytes). Returns 1 with the message in
 * *ret_msg and *ret_len (pointing into @p) and the bytes it took, header included, in *ret_used;
 * 0 when @p holds only part of a message (nothing written); -EMSGSIZE when its declared length
 * exceeds @max (decided from the header alone, so a peer cannot make us buffer it);
 * -EPROTONOSUPPORT for a compressed message (we announce no grpc-accept-encoding);
 * -EBADMSG for a flag byte other than 0 or 1.
 */
int grpc_frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **ret_msg,
		    size_t *ret_len, size_t *ret_used);

/*
 * Exactly one whole message in @p: what a unary request or reply carries. 0, -EBADMSG (none,
 * a partial one or trailing bytes), or grpc_frame_next()'s errors.
 */
int grpc_frame_single(const uint8_t *p, size_t n, size_t max, const uint8_t **ret_msg,
		      size_t *ret_len);

/*
 * Parses a grpc-timeout value (1 to 8 ASCII digits and a unit: H, M, S, m, u, n) into
 * microseconds, rounding nanoseconds up and saturating at UINT64_MAX. 0 or -EINVAL.
 */
int grpc_timeout_parse(const char *s, uint64_t *ret_usec);

/*
 * Formats @usec as a grpc-timeout value into @buf (at least 10 bytes), choosing the finest
 * unit that fits 8 digits. Returns @buf.
 */
char *grpc_timeout_format(uint64_t usec, char buf[static 10]);

/*
 * grpc-message percent-encoding: bytes outside 0x20..0x7e and '%' become "%XX". Returns a
 * malloc'd string or NULL (out of memory).
 */
char *grpc_message_encode(const char *s);
/*
 * The reverse; malformed escapes are kept as they are (the protocol says to be lenient), NUL
 * bytes are dropped. @len bytes of @s. malloc'd, or NULL (out of memory).
 */
char *grpc_message_decode(const char *s, size_t len);
