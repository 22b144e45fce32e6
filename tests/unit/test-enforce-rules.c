// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The pure part of enforcement: the device program a rule list becomes (run here by a small
 * interpreter of the instructions it uses, as the kernel would for each access), the v1
 * devices lines, and the cgroup hierarchy of a host from its mount table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "services/enforce-rules.h"
#include "shared/macro.h"

/* Runs @p on one access as the kernel's cgroup device hook does: 1 allows, 0 denies. */
static int64_t run(const struct bpf_insn *p, size_t n, char type, unsigned access, uint32_t major,
		   uint32_t minor)
{
	uint32_t ctx[3] = { access << 16 | (type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK),
			    major, minor };
	uint64_t reg[11] = {};
	size_t steps = 0;

	for (size_t pc = 0; pc < n; pc++) {
		const struct bpf_insn *i = &p[pc];
		uint64_t k = (uint64_t)(int64_t)i->imm;

		assert_true(++steps <= n); /* no jump goes backwards */
		switch (i->code) {
		case BPF_LDX | BPF_W | BPF_MEM:
			assert_int_equal(i->src_reg, BPF_REG_1);
			assert_true(i->off >= 0 && i->off <= 8 && i->off % 4 == 0);
			reg[i->dst_reg] = ctx[i->off / 4];
			break;
		case BPF_ALU64 | BPF_MOV | BPF_X:
			reg[i->dst_reg] = reg[i->src_reg];
			break;
		case BPF_ALU64 | BPF_MOV | BPF_K:
			reg[i->dst_reg] = k;
			break;
		case BPF_ALU64 | BPF_AND | BPF_K:
			reg[i->dst_reg] &= k;
			break;
		case BPF_ALU64 | BPF_RSH | BPF_K:
			reg[i->dst_reg] >>= k;
			break;
		case BPF_JMP | BPF_JNE | BPF_K:
			assert_true(i->off >= 0);
			if (reg[i->dst_reg] != k)
				pc += (size_t)i->off;
			break;
		case BPF_JMP | BPF_EXIT:
			return (int64_t)reg[BPF_REG_0];
		default:
			fail_msg("instruction %zu: unexpected code 0x%x", pc, i->code);
		}
	}
	fail_msg("the program runs past its end");
	return -1;
}

static void test_bpf_program(void **state)
{
	const struct enforce_rule rules[] = {
		{ 'c', 240, 0, ENFORCE_ACC_RW },
		{ 'c', 136, ENFORCE_ANY, ENFORCE_ACC_READ },
		{ 'b', 8, 1, ENFORCE_ACC_ALL },
	};
	_cleanup_free_ struct bpf_insn *p = NULL;
	size_t n;

	assert_int_equal(enforce_bpf_build(rules, ELEMENTSOF(rules), &p, &n), 0);
	/* prologue 6, rules 8 + 7 + 8, the final deny 2 */
	assert_int_equal(n, 31);
	assert_int_equal(p[n - 1].code, BPF_JMP | BPF_EXIT);

	/* the granted node with the granted access, and only that */
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 240, 0), 1);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_READ, 240, 0), 1);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_MKNOD, 240, 0), 0);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 240, 1), 0);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 241, 0), 0);
	assert_int_equal(run(p, n, 'b', ENFORCE_ACC_RW, 240, 0), 0);
	/* any minor of 136, reading only */
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_READ, 136, 7), 1);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_READ, 136, 0), 1);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 136, 7), 0);
	/* the block device, every access */
	assert_int_equal(run(p, n, 'b', ENFORCE_ACC_ALL, 8, 1), 1);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_READ, 8, 1), 0);
	p = mfree(p);

	/* no rules: everything denied */
	assert_int_equal(enforce_bpf_build(NULL, 0, &p, &n), 0);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_READ, 1, 3), 0);
	p = mfree(p);

	/* the pseudo-devices every workload gets */
	assert_int_equal(enforce_bpf_build(enforce_pseudo_rules, enforce_n_pseudo_rules, &p, &n),
			 0);
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 1, 3), 1);  /* null */
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 1, 9), 1);  /* urandom */
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 5, 2), 1);  /* ptmx */
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 136, 3), 1); /* pts/3 */
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 1, 1), 0);  /* mem */
	assert_int_equal(run(p, n, 'c', ENFORCE_ACC_RW, 195, 0), 0);

	/* bad rules */
	assert_int_equal(enforce_bpf_build(&(struct enforce_rule){ 'x', 1, 1, 2 }, 1, &p, &n),
			 -EINVAL);
	assert_int_equal(enforce_bpf_build(&(struct enforce_rule){ 'c', 1, 1, 0 }, 1, &p, &n),
			 -EINVAL);
	assert_int_equal(enforce_bpf_build(&(struct enforce_rule){ 'c', 1, 1, 8 }, 1, &p, &n),
			 -EINVAL);
	assert_int_equal(enforce_bpf_build(enforce_pseudo_rules, 100000, &p, &n), -E2BIG);
}

static void test_v1_lines(void **state)
{
	char buf[64], acc[4];

	assert_int_equal(enforce_v1_line(&(struct enforce_rule){ 'c', 195, 0, ENFORCE_ACC_RW },
					 buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "c 195:0 rw");
	assert_int_equal(enforce_v1_line(&(struct enforce_rule){ 'c', 136, ENFORCE_ANY,
								  ENFORCE_ACC_ALL },
					 buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "c 136:* rwm");
	assert_int_equal(enforce_v1_line(&(struct enforce_rule){ 'b', ENFORCE_ANY, ENFORCE_ANY,
								  ENFORCE_ACC_MKNOD },
					 buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "b *:* m");
	assert_int_equal(enforce_v1_line(&(struct enforce_rule){ 'c', 195, 0, ENFORCE_ACC_RW },
					 buf, 5),
			 -ENOBUFS);
	assert_int_equal(enforce_v1_line(&(struct enforce_rule){ 'a', 1, 0, ENFORCE_ACC_RW }, buf,
					 sizeof(buf)),
			 -EINVAL);
	assert_string_equal(enforce_access_string(ENFORCE_ACC_READ | ENFORCE_ACC_MKNOD, acc), "rm");
}

/* This development machine's table: cgroup v1 controllers, cgroup2 beside them. */
static const char hybrid[] =
	"22 27 0:21 / /proc rw,relatime - proc proc rw\n"
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	"60 50 0:38 / /other/sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static void test_mounts(void **state)
{
	struct cgroup_mounts m;

	assert_int_equal(cgroup_mounts_parse(hybrid, &m), 0);
	assert_int_equal(m.hierarchy, CGROUP_HIERARCHY_HYBRID);
	assert_string_equal(cgroup_hierarchy_to_string(m.hierarchy), "hybrid");
	assert_string_equal(m.unified, "/sys/fs/cgroup/unified");
	assert_string_equal(m.devices, "/sys/fs/cgroup/devices");
	cgroup_mounts_done(&m);

	/* a GPU host's: cgroup2 only, with optional fields before the separator */
	assert_int_equal(cgroup_mounts_parse("29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - "
					     "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
					     &m),
			 0);
	assert_int_equal(m.hierarchy, CGROUP_HIERARCHY_UNIFIED);
	assert_string_equal(m.unified, "/sys/fs/cgroup");
	assert_null(m.devices);
	cgroup_mounts_done(&m);

	/* v1 only, a mount point with a space (escaped by the kernel) */
	assert_int_equal(cgroup_mounts_parse("36 31 0:33 / /cg\\040v1/devices rw - cgroup cgroup "
					     "rw,cpu,devices\n",
					     &m),
			 0);
	assert_int_equal(m.hierarchy, CGROUP_HIERARCHY_LEGACY);
	assert_null(m.unified);
	assert_string_equal(m.devices, "/cg v1/devices");
	cgroup_mounts_done(&m);

	/* neither, and garbage */
	assert_int_equal(cgroup_mounts_parse("22 27 0:21 / /proc rw - proc proc rw\nnonsense\n - \n",
					     &m),
			 0);
	assert_int_equal(m.hierarchy, CGROUP_HIERARCHY_NONE);
	assert_null(m.unified);
	cgroup_mounts_done(&m);
	/* a devices-like word is not the controller */
	assert_int_equal(cgroup_mounts_parse("1 2 0:1 / /x rw - cgroup cgroup rw,devicesx\n", &m),
			 0);
	assert_null(m.devices);
	assert_int_equal(m.hierarchy, CGROUP_HIERARCHY_LEGACY);
	cgroup_mounts_done(&m);
}

static void test_proc_cgroup(void **state)
{
	const char *text = "9:name=systemd:/\n"
			   "5:devices:/job/7\n"
			   "4:memory:/process_api/x\n"
			   "2:cpu,cpuacct:/a\n"
			   "0::/system.slice/xpud.service\n";
	char *p = NULL;

	assert_int_equal(cgroup_path_parse(text, NULL, &p), 0);
	assert_string_equal(p, "/system.slice/xpud.service");
	p = mfree(p);
	assert_int_equal(cgroup_path_parse(text, "devices", &p), 0);
	assert_string_equal(p, "/job/7");
	p = mfree(p);
	assert_int_equal(cgroup_path_parse(text, "cpuacct", &p), 0);
	assert_string_equal(p, "/a");
	p = mfree(p);
	assert_int_equal(cgroup_path_parse(text, "pids", &p), -ENOENT);
	assert_int_equal(cgroup_path_parse("5:devices:/x\n", NULL, &p), -ENOENT);
}

static void test_cpu_max(void **state)
{
	char buf[32];

	assert_int_equal(enforce_cpu_max(150, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "150000 100000");
	assert_int_equal(enforce_cpu_max(1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1000 100000");
	assert_int_equal(enforce_cpu_max(0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(enforce_cpu_max(100001, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bpf_program), cmocka_unit_test(test_v1_lines),
		cmocka_unit_test(test_mounts),	    cmocka_unit_test(test_proc_cgroup),
		cmocka_unit_test(test_cpu_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
