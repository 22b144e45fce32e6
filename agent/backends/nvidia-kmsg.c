// SPDX-License-Identifier: GPL-2.0-or-later
/* The NVIDIA kernel module's XID lines in the kernel log, read field by field, in place. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "backends/nvidia-kmsg.h"
#include "shared/parse.h"

#define XID_PREFIX "NVRM: Xid "
#define CAUSE_INFIX " caused by previous Xid "

struct cursor {
	const char *p, *end;
};

static bool skip(struct cursor *c, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	return true;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_hex(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* A decimal number no larger than @max: digits only, at least one. */
static int number(struct cursor *c, unsigned max, unsigned *ret)
{
	unsigned v = 0;

	if (c->p >= c->end || !is_digit(*c->p))
		return -EBADMSG;
	for (; c->p < c->end && is_digit(*c->p); c->p++) {
		unsigned d = (unsigned)(*c->p - '0');

		if (v > (max - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

/* "DDDD:BB:DD" as the driver prints it (%04x:%02x:%02x), function 0 implied. */
static int pci_address(struct cursor *c, char ret[static 13])
{
	static const char shape[] = "xxxx:xx:xx";
	char addr[sizeof(shape) + 2];

	if ((size_t)(c->end - c->p) < sizeof(shape) - 1)
		return -EBADMSG;
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == ':' ? c->p[i] != ':' : !is_hex(c->p[i]))
			return -EBADMSG;
		addr[i] = c->p[i];
	}
	memcpy(addr + sizeof(shape) - 1, ".0", 3);
	if (parse_pci_address(addr, ret) < 0)
		return -EBADMSG;
	c->p += sizeof(shape) - 1;
	return 0;
}

/* Copies @n bytes of @s into @buf as printable ASCII ('?' for any other byte), truncating. */
static void copy_printable(char *buf, size_t size, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && i + 1 < size; i++)
		buf[i] = s[i] >= 0x20 && s[i] <= 0x7e ? s[i] : '?';
	buf[i] = '\0';
}

/* The value of a "key=" field up to the ", " that ends it (or the end); consumes the ", ". */
static void field(struct cursor *c, const char **ret, size_t *ret_len)
{
	const char *s = c->p;

	while (c->p < c->end && !(*c->p == ',' && c->end - c->p >= 2 && c->p[1] == ' '))
		c->p++;
	*ret = s;
	*ret_len = (size_t)(c->p - s);
	if (c->p < c->end)
		c->p += 2;
}

static bool equal(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && memcmp(s, word, n) == 0;
}

/* The value of "pid=": a process id, or "'<unknown>'" (-1). */
static int pid(struct cursor *c, int *ret)
{
	struct cursor f;
	const char *s;
	unsigned v;
	size_t n;

	field(c, &s, &n);
	if (equal(s, n, "'<unknown>'")) {
		*ret = -1;
		return 0;
	}
	f = (struct cursor){ s, s + n };
	if (number(&f, INT_MAX, &v) < 0 || f.p != f.end)
		return -EBADMSG;
	*ret = (int)v;
	return 0;
}

/* The tail " caused by previous Xid N" of @text[0..*@len): strips it and returns N, else 0. */
static unsigned cause(const char *text, size_t *len)
{
	size_t n = *len, i = n, k = strlen(CAUSE_INFIX);
	struct cursor c;
	unsigned v;

	while (i > 0 && is_digit(text[i - 1]))
		i--;
	if (i == n || i < k || memcmp(text + i - k, CAUSE_INFIX, k) != 0)
		return 0;
	c = (struct cursor){ text + i, text + n };
	if (number(&c, UINT_MAX, &v) < 0)
		return 0;
	*len = i - k;
	return v;
}

int nvidia_kmsg_parse_xid(const char *msg, size_t len, struct nvidia_xid_line *ret)
{
	struct nvidia_xid_line x = { .pid = -1 };
	struct cursor c;
	const char *s;
	size_t n;
	int r;

	if (!msg)
		return -ENOMSG;
	c = (struct cursor){ msg, msg + len };
	if (!skip(&c, XID_PREFIX))
		return -ENOMSG;

	/* "(PCI:0000:3b:00 GPU-I:01 GPU-CI:00): " */
	if (!skip(&c, "("))
		return -EBADMSG;
	(void)skip(&c, "PCI:");
	r = pci_address(&c, x.pci);
	if (r < 0)
		return r;
	if (skip(&c, " GPU-I:")) {
		r = number(&c, UINT16_MAX, &x.gi);
		if (r < 0)
			return r;
		x.has_gi = true;
		if (skip(&c, " GPU-CI:")) {
			r = number(&c, UINT16_MAX, &x.ci);
			if (r < 0)
				return r;
			x.has_ci = true;
		}
	}
	if (!skip(&c, "): "))
		return -EBADMSG;
	r = number(&c, UINT_MAX, &x.xid);
	if (r < 0)
		return r;
	if (c.p < c.end && !skip(&c, ", "))
		return -EBADMSG;

	if (skip(&c, "pid=")) {
		r = pid(&c, &x.pid);
		if (r < 0)
			return r;
	}
	if (skip(&c, "name=")) {
		field(&c, &s, &n);
		if (!equal(s, n, "<unknown>"))
			copy_printable(x.process, sizeof(x.process), s, n);
	}

	n = (size_t)(c.end - c.p);
	x.cause = cause(c.p, &n);
	copy_printable(x.text, sizeof(x.text), c.p, n);
	*ret = x;
	return 0;
}
