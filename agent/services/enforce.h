/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Enforcement: on a host that systemd runs (and "devices: auto"), a grant asked with "enforce"
 * gets a transient scope xpu-<allocation id>.scope under xpu.slice that holds its owner process
 * (enforce-systemd.c, enforce-unit.c). Without systemd: a grant asked with "enforce" gets a
 * child cgroup below a delegated root, named after the allocation, its owner process moved into
 * it, its devices confined (a cgroup v2 device program, or the v1 devices controller) and its
 * limits set (memory.max, cpu.max, cpuset, dmem.max) where the controllers are enabled. It
 * observes the allocation service's grants and releases (allocations_set_observer()); see
 * docs/enforcement.md.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/inventory.h"
#include "services/allocations.h"
#include "services/enforce-rules.h"
#include "shared/host.h"

/* How devices are confined. */
enum enforce_devices {
	ENFORCE_DEVICES_AUTO,	    /* configuration only: bpf where cgroup2 is mounted, else v1 */
	ENFORCE_DEVICES_BPF,	    /* a BPF_PROG_TYPE_CGROUP_DEVICE program on the v2 cgroup */
	ENFORCE_DEVICES_V1,	    /* the v1 devices controller */
	ENFORCE_DEVICES_SYSTEMD,    /* a transient scope of systemd's (its own device program) */
	ENFORCE_DEVICES_NONE,	    /* nothing can confine devices here */
	_ENFORCE_DEVICES_MAX,
	_ENFORCE_DEVICES_INVALID = -22,
};

const char *enforce_devices_to_string(enum enforce_devices d);
enum enforce_devices enforce_devices_from_string(const char *s);

/* What a grant asks to be confined to: the API's "enforce". */
struct enforce_request {
	bool on;
	struct enforce_limits limits;
};

/* Where the enforcer works ("enforce:" in xpud.yaml); NULL paths: detected. */
struct enforce_settings {
	const char *cgroup_root;     /* a cgroup2 directory xpud may make children in */
	const char *state_dir;	     /* xpud's state directory: owner units' own properties */
	const char *devices_v1_root; /* a directory of the v1 devices controller */
	enum enforce_devices devices;
};

/* A grant's confinement as read back from the cgroup files. */
struct enforce_status {
	char *unit;	 /* the transient unit of the systemd path, or NULL */
	char *cgroup;	 /* the v2 child cgroup's directory, or NULL */
	char *cgroup_v1; /* the v1 devices child cgroup's directory, or NULL */
	enum enforce_devices devices; /* what is in force: a program attached, v1 rules */
	uint32_t *bpf_programs;	      /* the ids of the device programs attached to it */
	size_t n_bpf_programs;
	char **v1_rules;      /* devices.list, line by line */
	char *memory_max;     /* the files' contents, NULL where the file is absent */
	char *cpu_max;
	char *cpuset_cpus;
	char *cpuset_mems;
	char *dmem_max;		   /* dmem.max, NULL where the controller is absent */
	/* who holds a memory share to its size: "dmem" (the kernel), "advisory (runtime)" (the
	 * vendor's runtime, asked through the environment), "advisory (none)", or "none" */
	const char *device_memory;
};

void enforce_status_done(struct enforce_status *s);

/*
 * Loads the cgroup device program for @rules (enforce_bpf_build()): its fd (the caller closes
 * it), or -errno of bpf() (-EPERM: BPF is not permitted) with why in *ret_error (may be NULL).
 * Does not log.
 */
int enforce_bpf_load(const struct enforce_rule *rules, size_t n, char **ret_error);

/*
 * Limits the device memory of PCI function @pci in the cgroup @dir to @bytes through dmem.max,
 * for each of its regions that the root's dmem.capacity text @capacity lists. 1 when set, 0 when
 * there is nothing to set (no dmem.max in @dir, no region of @pci), or -errno of the write with
 * why in *ret_error. Does not log.
 */
int enforce_dmem_set(const char *dir, const char *capacity, const char *pci, uint64_t bytes,
		     char **ret_error);

struct enforcer;

/*
 * Detects the host's cgroup hierarchies (from @host's proc/self/mountinfo; nothing where it
 * has none), settles where children go and how devices are confined, and logs that once.
 * @settings and @inv are borrowed. 0 or -ENOMEM (logged); a host where nothing can be confined
 * is no error: grants asking for it are refused.
 */
int enforcer_new(const struct xpu_host *host, const struct enforce_settings *settings,
		 struct inventory *inv, struct enforcer **ret);
struct enforcer *enforcer_free(struct enforcer *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct enforcer *, enforcer_free);

/*
 * Observes @allocations' grants and releases from now on (the observer's userdata is @e), and
 * removes what an earlier run left for allocations that no longer exist (empty child cgroups
 * named like allocations). Does not log beyond that sweep.
 */
int enforcer_observe(struct enforcer *e, struct allocations *allocations);

/* What the host offers: its hierarchy, how devices are confined, the cgroup root (or NULL). */
enum cgroup_hierarchy enforcer_hierarchy(const struct enforcer *e);
/* The mode in one word: "systemd", "cgroup2-bpf", "devices-v1" or "none". */
const char *enforcer_mode(const struct enforcer *e);
enum enforce_devices enforcer_devices(const struct enforcer *e);
const char *enforcer_cgroup_root(const struct enforcer *e);

/*
 * Reads the confinement of allocation @id back from its cgroups. 0 with *ret filled, -ENOENT
 * when it has no cgroup (not enforced), -ENOMEM. Does not log.
 */
int enforcer_read(const struct enforcer *e, const char *id, struct enforce_status *ret);
