// SPDX-License-Identifier: GPL-2.0-or-later
/* /dev/kmsg records: the header's numbers, the message and the dictionary, in place. */
#include <errno.h>
#include <string.h>

#include "shared/kmsg.h"

/*
 * A decimal field of the header, from *@p up to the next ',' or ';' (not consumed). Digits
 * only: no sign, no space, at least one digit. Advances *@p past the digits.
 */
static int header_number(const char **p, const char *end, uint64_t max, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s >= end || *s < '0' || *s > '9')
		return -EBADMSG;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*p = s;
	*ret = v;
	return 0;
}

/* Consumes the separator @c at *@p. */
static int header_separator(const char **p, const char *end, char c)
{
	if (*p >= end || **p != c)
		return -EBADMSG;
	(*p)++;
	return 0;
}

int kmsg_parse_record(const char *buf, size_t len, struct kmsg_record *ret)
{
	static const uint64_t max[3] = { KMSG_PRIORITY_MAX, UINT64_MAX, UINT64_MAX };
	const char *p = buf, *end, *flags, *nl;
	uint64_t v[3]; /* priority, sequence, timestamp */
	int r;

	if (!buf)
		return -EBADMSG;
	end = buf + len;
	for (size_t i = 0; i < 3; i++) {
		r = header_number(&p, end, max[i], &v[i]);
		if (r < 0)
			return r;
		r = header_separator(&p, end, ',');
		if (r < 0)
			return r;
	}

	/* the flags, then whatever fields a newer kernel adds, up to the ';' */
	flags = p;
	while (p < end && *p != ',' && *p != ';' && *p != '\n')
		p++;
	if (p == flags)
		return -EBADMSG;
	while (p < end && *p != ';' && *p != '\n')
		p++;
	if (p >= end || *p != ';')
		return -EBADMSG;
	p++;

	nl = memchr(p, '\n', (size_t)(end - p));
	*ret = (struct kmsg_record){
		.level = (unsigned)(v[0] & 7),
		.facility = (unsigned)(v[0] >> 3),
		.seq = v[1],
		.usec = v[2],
		.continuation = *flags == 'c' || *flags == '+',
		.msg = p,
		.msg_len = (size_t)((nl ?: end) - p),
		.dict = nl ? nl + 1 : end,
		.dict_len = nl ? (size_t)(end - nl - 1) : 0,
	};
	return 0;
}

int kmsg_record_get(const struct kmsg_record *rec, const char *key, const char **ret_value,
		    size_t *ret_len)
{
	const char *p = rec->dict, *end = rec->dict + rec->dict_len;
	size_t klen = strlen(key);

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ?: end;

		/* " KEY=VALUE": a leading space, the key, '=' */
		if ((size_t)(eol - p) > klen + 1 && p[0] == ' ' && memcmp(p + 1, key, klen) == 0 &&
		    p[1 + klen] == '=') {
			*ret_value = p + klen + 2;
			*ret_len = (size_t)(eol - p) - klen - 2;
			return 0;
		}
		p = eol + (nl ? 1 : 0);
	}
	return -ENOENT;
}
