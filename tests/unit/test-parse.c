// SPDX-License-Identifier: GPL-2.0-or-later
/* The strict parsers every sysfs and client value goes through. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "shared/parse.h"
#include "shared/strv.h"

static void test_integers(void **state)
{
	uint64_t u64;
	unsigned u;
	int i;

	assert_int_equal(safe_atoi("-1", &i), 0);
	assert_int_equal(i, -1);
	assert_int_equal(safe_atoi("2147483647", &i), 0);
	assert_int_equal(safe_atoi("2147483648", &i), -ERANGE);
	assert_int_equal(safe_atoi("-2147483648", &i), 0);
	assert_int_equal(i, -2147483647 - 1);
	assert_int_equal(safe_atoi("banana", &i), -EINVAL);
	assert_int_equal(safe_atoi("", &i), -EINVAL);
	assert_int_equal(safe_atoi(" 1", &i), -EINVAL);
	assert_int_equal(safe_atoi("1 ", &i), -EINVAL);
	assert_int_equal(safe_atoi("--1", &i), -EINVAL);
	assert_int_equal(safe_atou("-1", &u), -EINVAL);
	assert_int_equal(safe_atou("+1", &u), -EINVAL);
	assert_int_equal(safe_atou64("206158430208", &u64), 0);
	assert_true(u64 == 206158430208ULL);
	assert_int_equal(safe_atou64("99999999999999999999", &u64), -ERANGE);
}

static void test_hex_ids(void **state)
{
	uint32_t v;

	assert_int_equal(parse_hex_id("0x10de", 0xffff, &v), 0);
	assert_int_equal(v, 0x10de);
	assert_int_equal(parse_hex_id("0x030200", 0xffffff, &v), 0);
	assert_int_equal(v, 0x030200);
	assert_int_equal(parse_hex_id("0x10000", 0xffff, &v), -ERANGE);
	assert_int_equal(parse_hex_id("zz", 0xffffff, &v), -EINVAL);
	assert_int_equal(parse_hex_id("0x", 0xffff, &v), -EINVAL);
	assert_int_equal(parse_hex_id("", 0xffff, &v), -EINVAL);
	assert_int_equal(parse_hex_id("0x-1", 0xffff, &v), -EINVAL);
}

static void test_link_speed(void **state)
{
	unsigned mts;

	assert_int_equal(parse_pcie_link_speed("32.0 GT/s PCIe", &mts), 0);
	assert_int_equal(mts, 32000);
	assert_int_equal(parse_pcie_link_speed("2.5 GT/s PCIe", &mts), 0);
	assert_int_equal(mts, 2500);
	assert_int_equal(parse_pcie_link_speed("8 GT/s", &mts), 0);
	assert_int_equal(mts, 8000);
	assert_int_equal(parse_pcie_link_speed("Unknown", &mts), -ENODATA);
	assert_int_equal(parse_pcie_link_speed("fast", &mts), -EINVAL);
	assert_int_equal(parse_pcie_link_speed("32.0 GB/s", &mts), -EINVAL);
	assert_int_equal(parse_pcie_link_speed("32.0 GT/s PCIe junk", &mts), -EINVAL);
}

static void test_cpu_list(void **state)
{
	unsigned n;

	assert_int_equal(parse_cpu_list("0-55,112-167", &n), 0);
	assert_int_equal(n, 112);
	assert_int_equal(parse_cpu_list("0", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(parse_cpu_list("5-2", &n), -EINVAL);
	assert_int_equal(parse_cpu_list("1,,2", &n), -EINVAL);
	assert_int_equal(parse_cpu_list("1-", &n), -EINVAL);
	assert_int_equal(parse_cpu_list("", &n), -EINVAL);
	assert_int_equal(parse_cpu_list("0-99999", &n), -ERANGE);
}

static void test_pci_address(void **state)
{
	char a[13];

	assert_int_equal(parse_pci_address("0000:18:00.0", a), 0);
	assert_string_equal(a, "0000:18:00.0");
	assert_int_equal(parse_pci_address("18:00.0", a), 0);
	assert_string_equal(a, "0000:18:00.0");
	assert_int_equal(parse_pci_address("0000:DB:00.1", a), 0);
	assert_string_equal(a, "0000:db:00.1");
	assert_int_equal(parse_pci_address("0000:18:00.8", a), -EINVAL);
	assert_int_equal(parse_pci_address("0000:18:20.0", a), -EINVAL);
	assert_int_equal(parse_pci_address("pci0000:00", a), -EINVAL);
	assert_int_equal(parse_pci_address("../../etc", a), -EINVAL);
	assert_int_equal(parse_pci_address("", a), -EINVAL);
}

static void test_strv_env(void **state)
{
	_cleanup_strv_free_ char **env = NULL;

	assert_int_equal(strv_env_set(&env, "A", "1"), 0);
	assert_int_equal(strv_env_set(&env, "AB", "2"), 0);
	assert_int_equal(strv_env_set(&env, "A", "3"), 0);
	assert_int_equal(strv_length(env), 2);
	assert_string_equal(strv_env_get(env, "A"), "3");
	assert_string_equal(strv_env_get(env, "AB"), "2");
	assert_null(strv_env_get(env, "B"));
}

static void test_utf8_escape(void **state)
{
	char buf[32];

	assert_string_equal(utf8_escape_invalid("plain", buf, sizeof(buf)), "plain");
	assert_string_equal(utf8_escape_invalid("a\xffz", buf, sizeof(buf)), "a\\xffz");
	assert_string_equal(utf8_escape_invalid("a\nb\x7f", buf, sizeof(buf)), "a\\x0ab\\x7f");
	/* overlong, surrogate, above U+10FFFF, truncated */
	assert_string_equal(utf8_escape_invalid("\xc0\xaf", buf, sizeof(buf)), "\\xc0\\xaf");
	assert_string_equal(utf8_escape_invalid("\xed\xa0\x80", buf, sizeof(buf)),
			    "\\xed\\xa0\\x80");
	assert_string_equal(utf8_escape_invalid("\xf4\x90\x80\x80", buf, sizeof(buf)),
			    "\\xf4\\x90\\x80\\x80");
	assert_string_equal(utf8_escape_invalid("\xe2\x82", buf, sizeof(buf)), "\\xe2\\x82");
	/* valid multi-byte text is kept, and cut only between characters */
	assert_string_equal(utf8_escape_invalid("\xe2\x82\xac\xf0\x9f\x98\x80", buf, sizeof(buf)),
			    "\xe2\x82\xac\xf0\x9f\x98\x80");
	assert_string_equal(utf8_escape_invalid("\xc3\xa9\xc3\xa9\xc3\xa9", buf, 6),
			    "\xc3\xa9\xc3\xa9");
	assert_string_equal(utf8_escape_invalid("ab\xff", buf, 5), "ab");
	assert_string_equal(utf8_escape_invalid("", buf, 1), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_integers),    cmocka_unit_test(test_hex_ids),
		cmocka_unit_test(test_link_speed),  cmocka_unit_test(test_cpu_list),
		cmocka_unit_test(test_pci_address), cmocka_unit_test(test_strv_env),
		cmocka_unit_test(test_utf8_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
