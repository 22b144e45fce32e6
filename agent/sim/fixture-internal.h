/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the fixture builder's files share (fixture.c: the description and the entry points;
 * fixture-fs.c: file primitives; fixture-pci.c, fixture-nvidia.c, fixture-hotplug.c). Private to
 * agent/sim/. The functions that take a struct fixture write nothing while validating
 * (fx_validating()), return 0 or -errno, and leave the first message in fx->error.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/macro.h"
#include "sim/fixture.h"

#define CPU_BITS 65536u	   /* parse_cpu_list()'s limit */
#define NUMA_BITS 1024u	   /* the kernel's MAX_NUMNODES ceiling */
#define NVIDIA_MINORS 255u /* 255 is nvidiactl */
#define MAJOR_MAX 4095	   /* 12 bits of dev_t */
#define MINOR_MAX 1048575  /* 20 bits of dev_t */
#define WHERE_MAX 160
#define MIG_GI_IDS 15 /* GPU instance ids 0..14 ... */
#define MIG_CI_IDS 8  /* ... each with compute instance ids 0..7 */

/* json_decrefp() comes with jansson (>= 2.11). */

/* A GPU of the description: the minor of its nvidia block, by PCI address. */
struct nvidia_gpu {
	char address[13];
	int minor;
};

struct fixture {
	int root;		    /* the tree; -EBADF while validating */
	int tree;		    /* the tree, to read what earlier builds left, in both walks */
	const char *dir;	    /* the tree's path */
	char *error;		    /* the first error, malloc'd */
	char device[13];	    /* address of the PCI function at hand, for messages */
	const char *driver_version; /* nvidia_driver.version, borrowed from the document */
	json_t *numa_nodes;	    /* borrowed, validated */
	char *all_cpus;		    /* union of the NUMA nodes' CPUs in list format, or NULL */
	char (*addresses)[13];	    /* PCI addresses seen so far, to reject duplicates */
	size_t n_addresses;
	uint64_t nvidia_minors[(NVIDIA_MINORS + 63) / 64];
	struct nvidia_gpu *gpus; /* the pci entries with an nvidia block */
	size_t n_gpus;
};

struct pcie_link {
	const char *speed, *max_speed;
	int width, max_width; /* -1: not given */
};

struct pci_function {
	char address[13];
	char *path; /* "sys/devices/pci0000:15/.../0000:18:00.0"; NULL: validate only */
	uint32_t vendor, device, subsystem_vendor, subsystem_device, class, revision;
	const char *driver;
	int numa_node;
	const char *local_cpulist;
	const struct pcie_link *link;
};

static inline bool fx_validating(const struct fixture *fx)
{
	return fx->root < 0;
}

static inline bool bit_test(const uint64_t *bits, unsigned i)
{
	return bits[i / 64] & (UINT64_C(1) << (i % 64));
}

/* fixture-fs.c: messages */
_printf_(2, 3) int fx_invalid(struct fixture *fx, const char *fmt, ...);
int fx_bad_key(struct fixture *fx, const char *where, const char *key, const char *what);
int fx_fs_error(struct fixture *fx, int r, const char *what, const char *path);

/* fixture-fs.c: paths (pathf() returns NULL when out of memory) */
_printf_(1, 2) char *pathf(const char *fmt, ...);
bool path_is_safe(const char *p, bool single);
size_t dir_len(const char *p);

/* fixture-fs.c: writing the tree (a NULL path or data stands for out of memory: -ENOMEM) */
int fx_mkdir(struct fixture *fx, const char *path);
int fx_write(struct fixture *fx, const char *path, const char *data, size_t len);
_printf_(4, 5) int fx_attrf(struct fixture *fx, const char *dir, const char *name, const char *fmt,
			    ...);
int fx_unlink(struct fixture *fx, const char *path);
int fx_symlink(struct fixture *fx, const char *link, const char *target);
int readlinkat_malloc(int dirfd, const char *path, char **ret);

/* fixture.c: typed getters of the description; absent and null both mean "not given" */
int check_keys(struct fixture *fx, json_t *obj, const char *where, const char *const *keys);
json_t *get_value(json_t *obj, const char *key);
int get_string(struct fixture *fx, json_t *obj, const char *where, const char *key, bool required,
	       const char **ret);
int get_int(struct fixture *fx, json_t *obj, const char *where, const char *key, bool required,
	    int min, int max, int def, int *ret);
int get_hex(struct fixture *fx, json_t *obj, const char *where, const char *key, bool required,
	    uint32_t max, uint32_t def, uint32_t *ret);
int get_object(struct fixture *fx, json_t *obj, const char *where, const char *key, json_t **ret);
int get_array(struct fixture *fx, json_t *obj, const char *where, const char *key, json_t **ret);
int build_raw_files(struct fixture *fx, json_t *files, const char *dir, const char *where);

/* fixture-pci.c */
int parse_address(struct fixture *fx, const char *s, const char *what, char ret[static 13]);
int build_pci(struct fixture *fx, json_t *e, const char *where, bool partial);
/* {"name": "amdgpu_xcp_1", "class_devices": [...]}: a platform device and its class devices. */
int build_platform(struct fixture *fx, json_t *e, const char *where);
int merge_entry(struct fixture *fx, json_t *defaults, json_t *templates, json_t *entry,
		const char *where, json_t **ret);

/* fixture-nvidia.c */
int build_nvidia_driver(struct fixture *fx, json_t *drv);
int build_fake_nvml(struct fixture *fx, json_t *nvml);
int build_nvidia_gpu(struct fixture *fx, const struct pci_function *f, json_t *obj,
		     const char *where, bool partial);
int build_mig_capabilities(struct fixture *fx, json_t *nvml);
