// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /dev/kmsg records and the NVIDIA driver's XID reports in them: every recorded line of
 * tests/fixtures/kmsg/xid-lines.txt to its GPU, MIG instance and action, and garbled records
 * to an error, never past the bytes given.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/nvidia-kmsg.h"
#include "backends/nvidia-xid.h"
#include "shared/kmsg.h"
#include "shared/macro.h"
#include "testutil.h"

/* A copy of @n bytes of @s in a buffer of exactly @n bytes: ASan sees any read past it. */
static char *exact(const char *s, size_t n)
{
	char *p = malloc(n ?: 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

static int parse_record(const char *s, struct kmsg_record *ret)
{
	_cleanup_free_ char *buf = exact(s, strlen(s));
	int r = kmsg_parse_record(buf, strlen(s), ret);

	/* the record's pointers must not outlive the buffer in these tests */
	ret->msg = ret->dict = NULL;
	return r;
}

static void test_record_header(void **state)
{
	const char *s = "6,339,5140900,-;NET: Registered PF_INET6 protocol family\n";
	struct kmsg_record rec;

	assert_int_equal(kmsg_parse_record(s, strlen(s), &rec), 0);
	assert_int_equal(rec.level, 6);
	assert_int_equal(rec.facility, 0);
	assert_true(rec.seq == 339);
	assert_true(rec.usec == 5140900);
	assert_false(rec.continuation);
	assert_int_equal(rec.msg_len, strlen("NET: Registered PF_INET6 protocol family"));
	assert_memory_equal(rec.msg, "NET: Registered", 15);
	assert_int_equal(rec.dict_len, 0);

	/* the facility above the level's 3 bits; the largest numbers that fit */
	assert_int_equal(parse_record("14,1,2,-;x", &rec), 0);
	assert_int_equal(rec.level, 6);
	assert_int_equal(rec.facility, 1);
	assert_int_equal(parse_record("2047,18446744073709551615,18446744073709551615,-;", &rec),
			 0);
	assert_int_equal(rec.level, 7);
	assert_int_equal(rec.facility, 255);
	assert_true(rec.seq == UINT64_MAX && rec.usec == UINT64_MAX);
	assert_int_equal(rec.msg_len, 0);

	/* continuation fragments: 'c', and '+' from kernels before 4.9; extra fields ignored */
	assert_int_equal(parse_record("4,5,6,c;[", &rec), 0);
	assert_true(rec.continuation);
	assert_int_equal(parse_record("4,5,6,+;0", &rec), 0);
	assert_true(rec.continuation);
	assert_int_equal(parse_record("4,5,6,-,caller=T1,more;x", &rec), 0);
	assert_false(rec.continuation);
	assert_int_equal(rec.msg_len, 1);
	/* a read cut before the message's newline */
	assert_int_equal(parse_record("4,5,6,-;no newline", &rec), 0);
	assert_int_equal(rec.msg_len, strlen("no newline"));
}

static void test_record_garbled(void **state)
{
	static const char *const bad[] = {
		"",
		"4",
		"4,",
		"4,1",
		"4,1,",
		"4,1,2",
		"4,1,2,",
		"4,1,2,-",
		"4,1,2,-\n;x",
		"4,1,2;x",
		"4,1,2,;x",
		"4,1,2,-x",
		",1,2,-;x",
		"-4,1,2,-;x",
		"+4,1,2,-;x",
		" 4,1,2,-;x",
		"4, 1,2,-;x",
		"4,1,2x,-;x",
		"0x4,1,2,-;x",
		"4;1,2,-;x",
		"NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
		"\xff\xfe,1,2,-;x",
	};
	static const char *const huge[] = {
		"2048,1,2,-;x",
		"99999999999999999999999,1,2,-;x",
		"4,18446744073709551616,2,-;x",
		"4,1,18446744073709551616,-;x",
		"4,1,99999999999999999999999999999999999999,-;x",
	};
	struct kmsg_record rec;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (parse_record(bad[i], &rec) != -EBADMSG)
			fail_msg("accepted or misjudged \"%s\"", bad[i]);
	for (size_t i = 0; i < ELEMENTSOF(huge); i++)
		if (parse_record(huge[i], &rec) != -ERANGE)
			fail_msg("accepted or misjudged \"%s\"", huge[i]);
	assert_int_equal(kmsg_parse_record(NULL, 0, &rec), -EBADMSG);
}

static void test_record_dictionary(void **state)
{
	const char *s = "3,12,34,-;ahci 0000:00:1f.2: SATA link down\n"
			" SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1f.2\n DEV\n";
	_cleanup_free_ char *buf = exact(s, strlen(s));
	struct kmsg_record rec;
	const char *v;
	size_t n;

	assert_int_equal(kmsg_parse_record(buf, strlen(s), &rec), 0);
	assert_int_equal(rec.msg_len, strlen("ahci 0000:00:1f.2: SATA link down"));
	assert_int_equal(kmsg_record_get(&rec, "SUBSYSTEM", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "pci", 3);
	assert_int_equal(kmsg_record_get(&rec, "DEVICE", &v, &n), 0);
	assert_int_equal(n, strlen("+pci:0000:00:1f.2"));
	assert_memory_equal(v, "+pci:0000:00:1f.2", n);
	/* a key is matched whole, never as a prefix of another */
	assert_int_equal(kmsg_record_get(&rec, "DEV", &v, &n), -ENOENT);
	assert_int_equal(kmsg_record_get(&rec, "SUBSYS", &v, &n), -ENOENT);
	assert_int_equal(kmsg_record_get(&rec, "DRIVER", &v, &n), -ENOENT);
}

/* The value of "key=" in the expectation @e, up to the next space (text=: the rest). */
static const char *expect(const char *e, const char *key, char *buf, size_t size)
{
	size_t klen = strlen(key);
	const char *p = e;

	for (;;) {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t n = streq(key, "text") ? strlen(v) : strcspn(v, " ");

			assert_true(n < size);
			memcpy(buf, v, n);
			buf[n] = '\0';
			return buf;
		}
		p = strchr(p, ' ');
		if (!p)
			fail_msg("no %s= in \"%s\"", key, e);
		p++;
	}
}

/* An expected MIG instance: "-" for none, as -1 */
static int instance(const char *e, const char *key)
{
	char v[16];

	expect(e, key, v, sizeof(v));
	return streq(v, "-") ? -1 : atoi(v);
}

static void check_xid(unsigned line, const struct nvidia_xid_line *x, const char *e)
{
	char want[512], got[512];
	const char *what = NULL;

	snprintf(got, sizeof(got), "%s %u %d %d %d %s %u %s", x->pci, x->xid,
		 x->has_gi ? (int)x->gi : -1, x->has_ci ? (int)x->ci : -1, x->pid, x->process,
		 x->cause, x->text);
	snprintf(want, sizeof(want), "%s %s %d %d %s %s %s %s", expect(e, "pci", (char[16]){}, 16),
		 expect(e, "xid", (char[16]){}, 16), instance(e, "gi"), instance(e, "ci"),
		 expect(e, "pid", (char[16]){}, 16), expect(e, "name", (char[80]){}, 80),
		 expect(e, "cause", (char[16]){}, 16), expect(e, "text", (char[300]){}, 300));
	if (!streq(got, want))
		fail_msg("line %u:\n  parsed   %s\n  expected %s", line, got, want);
	/* what the existing XID table makes of it */
	assert_string_equal(health_action_to_string(nvidia_xid_action(x->xid, NULL, &what)),
			    expect(e, "action", (char[32]){}, 32));
	assert_non_null(what);
	/* a compute instance only within a GPU instance */
	assert_true(x->has_gi || !x->has_ci);
}

static void test_recorded_lines(void **state)
{
	struct test_xid_lines *t = test_xid_lines_open();
	unsigned n_xid = 0, n_other = 0, n_mig = 0, n_bad = 0;
	struct test_xid_sample s;

	while (test_xid_lines_next(t, &s)) {
		_cleanup_free_ char *buf = exact(s.record, s.len);
		unsigned lineno = s.lineno;
		const char *e = s.expected;
		struct nvidia_xid_line x;
		struct kmsg_record rec;
		int r;

		r = kmsg_parse_record(buf, s.len, &rec);
		if (streq(e, "bad-record")) {
			if (r >= 0)
				fail_msg("line %u: record accepted", lineno);
			n_bad++;
			continue;
		}
		if (r < 0)
			fail_msg("line %u: record refused: %s", lineno, strerror(-r));
		r = nvidia_kmsg_parse_xid(rec.msg, rec.msg_len, &x);
		if (streq(e, "not-xid")) {
			if (r != -ENOMSG)
				fail_msg("line %u: %d, not -ENOMSG", lineno, r);
			n_other++;
		} else if (streq(e, "bad-xid")) {
			if (r != -EBADMSG)
				fail_msg("line %u: %d, not -EBADMSG", lineno, r);
			n_bad++;
		} else {
			if (r < 0)
				fail_msg("line %u: XID refused: %s", lineno, strerror(-r));
			check_xid(lineno, &x, e);
			n_xid++;
			n_mig += x.has_gi;
		}
	}
	test_xid_lines_close(t);
	/* the file was read, all of it */
	assert_true(n_xid >= 25);
	assert_true(n_mig >= 4);
	assert_true(n_other >= 6);
	assert_true(n_bad >= 10);
}

/* Every cut of a record: an error or a parse, and nothing read past the cut. */
static void test_every_truncation(void **state)
{
	static const char *const records[] = {
		"4,10412,812345678,-;NVRM: Xid (PCI:0000:3b:00 GPU-I:01 GPU-CI:00): 43, pid=24171, "
		"name=python3, Ch 00000008 caused by previous Xid 149\n SUBSYSTEM=pci\n",
		"4,5122,262345679555,-;NVRM: Xid (PCI:0000:00:08): 94, pid='<unknown>', "
		"name=<unknown>, Contained: SM (0x1). RST: No, D-RST: No\n",
	};

	for (size_t i = 0; i < ELEMENTSOF(records); i++) {
		size_t len = strlen(records[i]), header = strcspn(records[i], ";") + 1;

		for (size_t n = 0; n <= len; n++) {
			_cleanup_free_ char *buf = exact(records[i], n);
			struct nvidia_xid_line x;
			struct kmsg_record rec;
			int r = kmsg_parse_record(buf, n, &rec);

			assert_int_equal(r < 0, n < header);
			if (r < 0)
				continue;
			assert_true(rec.msg + rec.msg_len <= buf + n);
			r = nvidia_kmsg_parse_xid(rec.msg, rec.msg_len, &x);
			if (rec.msg_len < strlen("NVRM: Xid "))
				assert_int_equal(r, -ENOMSG);
			else
				assert_true(r == 0 || r == -EBADMSG);
		}
	}
}

static int parse_xid(const char *s, struct nvidia_xid_line *ret)
{
	_cleanup_free_ char *buf = exact(s, strlen(s));

	return nvidia_kmsg_parse_xid(buf, strlen(s), ret);
}

static void test_xid_bounds(void **state)
{
	char long_name[200], msg[1024];
	struct nvidia_xid_line x;

	/* numbers that do not fit */
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00 GPU-I:65536): 43, x", &x), -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00 GPU-I:1 GPU-CI:99999999): 43, x", &x),
			 -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00): 43, pid=2147483648, x", &x),
			 -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00): 43, pid=-1, x", &x), -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00): 43, pid=2147483647, x", &x), 0);
	assert_int_equal(x.pid, 2147483647);
	/* no ", " after the number; something else after the address; an address too long */
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00): 43x", &x), -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00 CI:1): 43, x", &x), -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid (PCI:10000:3b:00): 43, x", &x), -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00.0): 43, x", &x), -EBADMSG);
	assert_int_equal(parse_xid("NVRM: Xid 43: x", &x), -EBADMSG);
	/* not an XID report at all */
	assert_int_equal(parse_xid("NVRM: Xid", &x), -ENOMSG);
	assert_int_equal(parse_xid("nvrm: xid (PCI:0000:3b:00): 43, x", &x), -ENOMSG);
	assert_int_equal(nvidia_kmsg_parse_xid(NULL, 0, &x), -ENOMSG);
	/* the bare number, nothing after it */
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00): 79", &x), 0);
	assert_int_equal(x.xid, 79);
	assert_string_equal(x.text, "");
	assert_int_equal(x.pid, -1);

	/* a long process name and text are cut to their fields, terminated */
	memset(long_name, 'p', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	snprintf(msg, sizeof(msg), "NVRM: Xid (PCI:0000:3b:00): 43, pid=1, name=%s, %s, %s",
		 long_name, long_name, long_name);
	assert_int_equal(parse_xid(msg, &x), 0);
	assert_int_equal(strlen(x.process), sizeof(x.process) - 1);
	assert_int_equal(strlen(x.text), sizeof(x.text) - 1);
	assert_int_equal(x.cause, 0);
	/* "caused by previous Xid" only as the whole tail, with a number that fits */
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00): 45, Ch 1 caused by previous Xid "
				   "99999999999",
				   &x),
			 0);
	assert_int_equal(x.cause, 0);
	assert_string_equal(x.text, "Ch 1 caused by previous Xid 99999999999");
	assert_int_equal(parse_xid("NVRM: Xid (PCI:0000:3b:00): 45, caused by previous Xid ", &x),
			 0);
	assert_int_equal(x.cause, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_header),
		cmocka_unit_test(test_record_garbled),
		cmocka_unit_test(test_record_dictionary),
		cmocka_unit_test(test_recorded_lines),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_xid_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
