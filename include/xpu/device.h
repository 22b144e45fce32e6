/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The xpud device model: plain data that every backend fills in and every front end reads.
 * The JSON form of these structs is the API contract documented in docs/api.md.
 */
#ifndef XPU_DEVICE_H
#define XPU_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

enum xpu_kind {
	XPU_KIND_GPU,
	XPU_KIND_ACCEL,
	XPU_KIND_FPGA,
	_XPU_KIND_MAX,
	_XPU_KIND_INVALID = -22, /* -EINVAL */
};

enum xpu_health_state {
	XPU_HEALTH_HEALTHY,
	XPU_HEALTH_UNHEALTHY,
	_XPU_HEALTH_MAX,
	_XPU_HEALTH_INVALID = -22,
};

struct xpu_pci_info {
	char address[13]; /* canonical "0000:17:00.0" */
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t subsystem_vendor_id;
	uint16_t subsystem_device_id;
	uint32_t class_code; /* 24 bits: base class, subclass, prog-if */
	uint8_t revision;
	/* PCIe link in MT/s (32000 = 32.0 GT/s) and lanes; 0 when the kernel does not know. */
	unsigned link_speed_mts;
	unsigned link_width;
	unsigned max_link_speed_mts;
	unsigned max_link_width;
};

struct xpu_health {
	enum xpu_health_state state;
	char *reason; /* NULL when healthy */
	/*
	 * What the fault asks for, when its source knows: one of xpud's health actions (0: nothing
	 * known; 3: the device is unusable until it is reset; see docs/architecture.md, "Resets").
	 * xpud's own bookkeeping: not part of the API's JSON.
	 */
	int action;
};

struct xpu_slice;
struct device_rules;

/* One kind of hardware partition a device can be cut into (a MIG GPU instance profile, ...). */
struct xpu_partition_profile {
	char *name;		 /* as the vendor's tools spell it: "1g.10gb" */
	unsigned free;		 /* instances of it that could be made now */
	unsigned total;		 /* instances of it the device holds at most */
	uint64_t memory_bytes;	 /* each instance's memory; 0 when unknown */
	double compute_fraction; /* each instance's share of the device's compute; 0 when unknown */
};

struct xpu_device {
	char *id; /* stable: the PCI address for PCI functions */
	enum xpu_kind kind;
	char *vendor; /* short lower-case vendor name: "nvidia", "amd", "intel", "xilinx", ... */
	char *model;  /* human-readable model name */
	bool has_pci;
	struct xpu_pci_info pci;
	char *driver;	    /* bound kernel driver; NULL if none */
	int numa_node;	    /* -1 when unknown */
	char *cpu_list;	    /* CPUs local to the device ("0-55,112-167"); NULL if unknown */
	uint64_t memory_bytes; /* 0 when unknown */
	char *uuid;	    /* vendor UUID where one exists; NULL otherwise */
	char **device_nodes; /* NULL-terminated host paths a workload needs */
	struct xpu_health health;
	const char *backend; /* name of the backend that produced this record (static) */
	/* Its backend's rules for offering it (xpud's core/rules.h; static), or NULL. */
	const struct device_rules *rules;

	/* What the slice planner needs to offer the whole device. */
	char *resource;	    /* default resource name, e.g. "nvidia.com/gpu" */
	char **env;	    /* KEY=VALUE a workload needs to see exactly this device */

	char **properties;  /* free-form: key, value, key, value, ..., NULL */

	/*
	 * Parts the hardware is already cut into (MIG instances, ...), as the backend sees them.
	 * When there are any, the planner offers these instead of the whole device.
	 */
	struct xpu_slice **partitions;
	size_t n_partitions;
	bool partitioned; /* usable only through partitions (MIG enabled), even with none yet */
	/* Whether the device can be partitioned (its rules' scheme), and whether it will be once
	 * reset (partitioned's value after the next reset); the profiles it can be cut into. */
	bool partition_capable;
	bool partition_pending;
	struct xpu_partition_profile *profiles;
	size_t n_profiles;
};

struct xpu_slice {
	char *id;
	char *device_id;
	char *resource;
	uint64_t memory_bytes; /* 0 when unknown */
	double compute_fraction; /* 1.0 for a whole device */
	bool shared;		 /* time-shared with other slices, no isolation claimed */
	char *profile;		 /* the partition's profile ("1g.10gb"), NULL for a whole device */
	char **device_nodes;
	char **env;
	/*
	 * The slice's own health, for faults that name one partition (an XID in one MIG
	 * instance); healthy otherwise. A slice is usable when both it and its device are healthy.
	 */
	struct xpu_health health;
};

#endif
