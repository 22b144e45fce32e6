/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pure part of confining a grant (services/enforce.c does the effects): the device rules a
 * workload gets, the cgroup v2 device filter (a BPF_PROG_TYPE_CGROUP_DEVICE program) and the v1
 * devices controller's lines they become, the limits' file contents, and which cgroup
 * hierarchy a host has, from its mount table. No system calls here.
 */
#pragma once

#include <linux/bpf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Access bits, the kernel's (BPF_DEVCG_ACC_*): a rule's and a request's. */
#define ENFORCE_ACC_MKNOD 1U
#define ENFORCE_ACC_READ 2U
#define ENFORCE_ACC_WRITE 4U
#define ENFORCE_ACC_RW (ENFORCE_ACC_READ | ENFORCE_ACC_WRITE)
#define ENFORCE_ACC_ALL (ENFORCE_ACC_RW | ENFORCE_ACC_MKNOD)
/* A major or minor that matches any number. */
#define ENFORCE_ANY UINT32_MAX

/* One device a workload may use: 'c' or 'b', its numbers (or ENFORCE_ANY), its access. */
struct enforce_rule {
	char type;
	uint32_t major, minor;
	unsigned access;
};

/*
 * The pseudo-devices every workload needs (systemd's DevicePolicy=closed set): /dev/null,
 * zero, full, random, urandom, tty, ptmx and the pseudo-terminals below /dev/pts.
 */
extern const struct enforce_rule enforce_pseudo_rules[];
extern const size_t enforce_n_pseudo_rules;

/*
 * The cgroup device program for @rules (n may be 0: only what nothing matches, denied): it
 * answers 1 (allow) for an access of a device that one rule matches with every bit of the
 * access in the rule's, else 0 (the kernel answers EPERM). *ret (malloc'd) has *ret_n
 * instructions. 0, -EINVAL (a rule's type is neither 'c' nor 'b', or its access is 0 or has
 * other bits), -E2BIG (more rules than one program's jumps can skip), -ENOMEM.
 */
int enforce_bpf_build(const struct enforce_rule *rules, size_t n, struct bpf_insn **ret,
		      size_t *ret_n);

/*
 * The devices.allow line of @r for the v1 devices controller: "c 195:0 rw", "c 136:* rwm". 0,
 * -EINVAL as enforce_bpf_build(), -ENOBUFS when @size is too small.
 */
int enforce_v1_line(const struct enforce_rule *r, char *buf, size_t size);

/* "rw", "rwm", "m": the access bits in the order the kernel writes them. @buf: 4 bytes. */
const char *enforce_access_string(unsigned access, char buf[static 4]);

/* Which cgroup hierarchies a host mounts. */
enum cgroup_hierarchy {
	CGROUP_HIERARCHY_NONE,	  /* neither: nothing can be confined */
	CGROUP_HIERARCHY_UNIFIED, /* cgroup v2 only */
	CGROUP_HIERARCHY_HYBRID,  /* cgroup v2 and v1 controllers beside it */
	CGROUP_HIERARCHY_LEGACY,  /* v1 only */
};

const char *cgroup_hierarchy_to_string(enum cgroup_hierarchy h);

struct cgroup_mounts {
	enum cgroup_hierarchy hierarchy;
	char *unified; /* where cgroup2 is mounted (the first such mount), or NULL */
	char *devices; /* where the v1 devices controller is mounted, or NULL */
};

void cgroup_mounts_done(struct cgroup_mounts *m);

/*
 * Reads a /proc/PID/mountinfo text: the first cgroup2 mount, the first v1 mount carrying the
 * devices controller, and so the hierarchy. Lines that do not parse are skipped (the kernel
 * writes them; a line of ours would be a bug, not an attack). 0 or -ENOMEM.
 */
int cgroup_mounts_parse(const char *mountinfo, struct cgroup_mounts *ret);

/*
 * The path of a process's cgroup in a /proc/PID/cgroup text: of the unified hierarchy ("0::")
 * when @controller is NULL, else of the v1 hierarchy that carries it. -ENOENT when the text has
 * none, -ENOMEM.
 */
int cgroup_path_parse(const char *proc_cgroup, const char *controller, char **ret);

/* The limits a grant asks for besides its devices (0: none). */
struct enforce_limits {
	uint64_t memory_max;   /* bytes */
	unsigned cpu_quota;    /* percent of one CPU, 1..100000 */
	bool numa_cpus;	       /* the CPUs and memory of the grant's NUMA node */
};

/* What cpu.max is given for @percent of one CPU: "QUOTA PERIOD" with a 100 ms period. */
int enforce_cpu_max(unsigned percent, char *buf, size_t size);

/*
 * The lines to write to a cgroup's dmem.max (the device memory controller, Linux 6.14+) that
 * limit the device memory of the PCI function @pci to @bytes: one "REGION BYTES" for each region
 * "drm/<pci>/..." that the root's dmem.capacity text @capacity lists ("REGION SIZE" lines).
 * 0 with *ret NULL when it lists none; -ENOMEM. Pure; does not log.
 */
int enforce_dmem_lines(const char *capacity, const char *pci, uint64_t bytes, char ***ret);
