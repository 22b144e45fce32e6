// SPDX-License-Identifier: GPL-2.0-or-later
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "parse.h"

static int parse_ull(const char *s, int base, unsigned long long *ret)
{
	unsigned long long v;
	char *end;

	if (isempty(s) || !isxdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || end == s || *end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int safe_atou64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	int r;

	if (isempty(s) || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	r = parse_ull(s, 10, &v);
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}

int safe_atou(const char *s, unsigned *ret)
{
	uint64_t v;
	int r;

	r = safe_atou64(s, &v);
	if (r < 0)
		return r;
	if (v > UINT_MAX)
		return -ERANGE;
	*ret = (unsigned)v;
	return 0;
}

int safe_atoi(const char *s, int *ret)
{
	bool neg = false;
	uint64_t v;
	int r;

	if (s && s[0] == '-') {
		neg = true;
		s++;
	}
	r = safe_atou64(s, &v);
	if (r < 0)
		return r;
	if (v > (uint64_t)INT_MAX + neg)
		return -ERANGE;
	*ret = neg ? (int)(-(int64_t)v) : (int)v;
	return 0;
}

int safe_atoux64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	int r;

	if (s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	r = parse_ull(s, 16, &v);
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}

int parse_hex_id(const char *s, uint32_t max, uint32_t *ret)
{
	uint64_t v;
	int r;

	r = safe_atoux64(s, &v);
	if (r < 0)
		return r;
	if (v > max)
		return -ERANGE;
	*ret = (uint32_t)v;
	return 0;
}

int parse_pcie_link_speed(const char *s, unsigned *ret_mts)
{
	unsigned whole = 0, frac = 0, frac_digits = 0;
	const char *p = s;

	if (isempty(s))
		return -EINVAL;
	if (strncmp(s, "Unknown", 7) == 0)
		return -ENODATA;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		whole = whole * 10 + (unsigned)(*p++ - '0');
		if (whole > 1000)
			return -ERANGE;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p)) {
			if (frac_digits < 3) {
				frac = frac * 10 + (unsigned)(*p - '0');
				frac_digits++;
			}
			p++;
		}
	}
	while (frac_digits < 3) {
		frac *= 10;
		frac_digits++;
	}
	if (strncmp(p, " GT/s", 5) != 0)
		return -EINVAL;
	p += 5;
	if (*p != '\0' && !streq(p, " PCIe"))
		return -EINVAL;
	*ret_mts = whole * 1000 + frac;
	return 0;
}

int parse_cpu_list(const char *s, unsigned *ret_count)
{
	unsigned count = 0;
	const char *p = s;

	if (isempty(s))
		return -EINVAL;
	for (;;) {
		unsigned a = 0, b;

		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p)) {
			a = a * 10 + (unsigned)(*p++ - '0');
			if (a > 65535)
				return -ERANGE;
		}
		b = a;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			b = 0;
			while (isdigit((unsigned char)*p)) {
				b = b * 10 + (unsigned)(*p++ - '0');
				if (b > 65535)
					return -ERANGE;
			}
			if (b < a)
				return -EINVAL;
		}
		count += b - a + 1;
		if (*p == '\0')
			break;
		if (*p != ',')
			return -EINVAL;
		p++;
	}
	*ret_count = count;
	return 0;
}

int parse_pci_address(const char *s, char ret[static 13])
{
	unsigned dom = 0, bus, dev, fn;
	int n = 0;

	if (isempty(s) || strlen(s) > 12)
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
			return -EINVAL;
	if (sscanf(s, "%4x:%2x:%2x.%1x%n", &dom, &bus, &dev, &fn, &n) == 4 && s[n] == '\0')
		;
	else if (dom = 0, n = 0, sscanf(s, "%2x:%2x.%1x%n", &bus, &dev, &fn, &n) == 3 &&
				   s[n] == '\0')
		;
	else
		return -EINVAL;
	if (dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(ret, 13, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

int path_pci_address(const char *path, char ret[static 13])
{
	_cleanup_free_ char *copy = path ? strdup(path) : NULL;
	char *save = NULL, *e;
	int r = -ENOENT;

	if (!copy)
		return -ENOMEM;
	for (e = strtok_r(copy, "/", &save); e; e = strtok_r(NULL, "/", &save))
		if (parse_pci_address(e, ret) >= 0)
			r = 0;
	return r;
}

char *strstrip_trailing(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

bool string_is_printable(const char *s)
{
	if (isempty(s))
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

struct unit {
	const char *suffix;
	uint64_t mult;
};

/* A whole number directly followed by one of @units' suffixes, times its multiplier. */
static int parse_with_unit(const char *s, const struct unit *units, size_t n_units,
			   uint64_t *ret)
{
	char num[32];
	uint64_t v;
	size_t n;

	if (isempty(s))
		return -EINVAL;
	n = strspn(s, "0123456789");
	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	if (safe_atou64(num, &v) < 0)
		return -ERANGE;
	for (size_t i = 0; i < n_units; i++)
		if (streq(s + n, units[i].suffix)) {
			if (v > UINT64_MAX / units[i].mult)
				return -ERANGE;
			*ret = v * units[i].mult;
			return 0;
		}
	return -EINVAL;
}

int parse_duration(const char *s, uint64_t *ret_usec)
{
	static const struct unit units[] = { { "ms", 1000ULL },	      { "s", 1000000ULL },
					     { "m", 60000000ULL },    { "h", 3600000000ULL },
					     { "", 1000000ULL } };

	return parse_with_unit(s, units, ELEMENTSOF(units), ret_usec);
}

int parse_size(const char *s, uint64_t *ret_bytes)
{
	static const struct unit units[] = {
		{ "B", 1 },	    { "KiB", 1ULL << 10 }, { "K", 1ULL << 10 },
		{ "MiB", 1ULL << 20 }, { "M", 1ULL << 20 },   { "GiB", 1ULL << 30 },
		{ "G", 1ULL << 30 },   { "TiB", 1ULL << 40 }, { "T", 1ULL << 40 },
	};

	return parse_with_unit(s, units, ELEMENTSOF(units), ret_bytes);
}

/*
 * The length of the UTF-8 sequence at @s (of @n bytes), or 0 when it is not one. The rules are
 * RFC 3629's, as jansson applies them: no overlong forms, no surrogates, nothing above
 * U+10FFFF. (jansson exports no validator, and glibc's decoders differ on these edges.)
 */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

char *utf8_escape_invalid(const char *s, char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), out = 0;

	while (n > 0) {
		size_t len = utf8_sequence(p, n);

		/* control characters too: the text is one line, and safe for a terminal */
		if (len == 0 || p[0] < 0x20 || p[0] == 0x7f) {
			/* \xHH: four bytes */
			if (out + 4 >= size)
				break;
			snprintf(buf + out, size - out, "\\x%02x", p[0]);
			out += 4;
			len = 1;
		} else {
			if (out + len >= size)
				break;
			memcpy(buf + out, p, len);
			out += len;
		}
		p += len;
		n -= len;
	}
	buf[out] = '\0';
	return buf;
}
