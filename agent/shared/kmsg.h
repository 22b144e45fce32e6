/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One record of the kernel's log as a read() of /dev/kmsg returns it (the kernel's
 * Documentation/ABI/testing/dev-kmsg):
 *
 *   "PRIORITY,SEQUENCE,TIMESTAMP_USEC,FLAGS[,MORE...];MESSAGE\n"
 *
 * optionally followed by dictionary lines " KEY=VALUE\n" (SUBSYSTEM=, DEVICE=). PRIORITY is the
 * syslog level in its 3 low bits and the facility above them; FLAGS is '-', or 'c' ('+' before
 * Linux 4.9) for a fragment of a line printed in pieces; fields after FLAGS are ignored, as the
 * kernel asks. The kernel escapes non-printable bytes of the message as "\xHH".
 *
 * Pure parsing of untrusted bytes: no allocation, no logging, nothing read past @len (the
 * buffer need not be NUL-terminated). The record's pointers borrow from the caller's buffer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest priority a record can carry: facility 255, level 7. */
#define KMSG_PRIORITY_MAX 0x7ffU

struct kmsg_record {
	unsigned level;    /* syslog level, 0 (emerg) .. 7 (debug) */
	unsigned facility; /* 0 for the kernel's own messages */
	uint64_t seq;
	uint64_t usec; /* since boot, by the kernel's clock */
	bool continuation;
	const char *msg; /* the message, without its newline; not NUL-terminated */
	size_t msg_len;
	const char *dict; /* the dictionary lines after the message, each " KEY=VALUE\n" */
	size_t dict_len;
};

/*
 * Parses the record in @buf[0..@len). Returns 0 and fills *@ret; -EBADMSG for a malformed
 * header (a field missing or not a number, no ';', a newline inside the header), -ERANGE for a
 * number that does not fit (priority above KMSG_PRIORITY_MAX, sequence or timestamp above
 * UINT64_MAX). A message without its final newline (a truncated read) is accepted.
 */
int kmsg_parse_record(const char *buf, size_t len, struct kmsg_record *ret);

/*
 * Finds @key's value in @rec's dictionary. Returns 0 and points *@ret_value and *@ret_len into the
 * record's buffer (not NUL-terminated); -ENOENT when the record has no such key.
 */
int kmsg_record_get(const struct kmsg_record *rec, const char *key, const char **ret_value,
		    size_t *ret_len);
