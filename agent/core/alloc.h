/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Allocations: which slices are handed to whom. The ledger is plain data (the daemon owns one,
 * state.c persists it); the allocator is a pure function that picks slices for a request from
 * the free, healthy ones (scoring documented in docs/allocation.md).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/device.h"
#include "core/plan.h"

enum owner_kind {
	OWNER_NONE,    /* released only by DELETE */
	OWNER_PID,     /* released when the process exits */
	OWNER_CGROUP,  /* released when the cgroup is empty or gone (a cgroup v2 path) */
	OWNER_UNIT,    /* released when the systemd unit's cgroup is empty or gone */
	OWNER_POD,     /* a Kubernetes pod/container ("POD_UID/CONTAINER"): kubelet reconciles */
	_OWNER_KIND_MAX,
	_OWNER_KIND_INVALID = -22,
};

const char *owner_kind_to_string(enum owner_kind k);
enum owner_kind owner_kind_from_string(const char *s);

struct alloc_owner {
	enum owner_kind kind;
	char *value;	      /* "1234", "/system.slice/foo.service", "foo.service", "uid/ctr" */
	uint64_t pid_start;   /* OWNER_PID: the process's start time (clock ticks after boot,
			       * /proc/PID/stat field 22), so a reused PID is not mistaken for it */
};

struct allocation {
	char *id;	 /* "a-" + 16 hex digits, random */
	char *resource;
	char **slices;	 /* slice ids, NULL-terminated, in grant order */
	struct alloc_owner owner;
	uint64_t created_usec; /* CLOCK_REALTIME */
	bool release_pending;  /* its owner is gone, the release not saved yet (not persisted) */
};

struct allocation *allocation_free(struct allocation *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct allocation *, allocation_free);
int allocation_dup(const struct allocation *a, struct allocation **ret);

struct ledger {
	struct allocation **items;
	size_t n;
};

void ledger_clear(struct ledger *l);
/* Takes ownership of @a. 0 or -ENOMEM. */
int ledger_add(struct ledger *l, struct allocation *a);
/* Removes and frees the allocation @id. 0 or -ENOENT. */
int ledger_remove(struct ledger *l, const char *id);
struct allocation *ledger_find(const struct ledger *l, const char *id);
/* The allocation holding slice @slice_id, or NULL. */
struct allocation *ledger_find_slice(const struct ledger *l, const char *slice_id);
/* Whether any slice of device @device_id is allocated (slices know their device). */
bool ledger_device_busy(const struct ledger *l, const struct slice_list *slices,
			const char *device_id);

struct alloc_request {
	char *resource;	  /* required unless slices is given */
	unsigned count;	  /* >= 1; with slices, their number */
	char **slices;	  /* explicit slice ids, or NULL */
	bool numa_local;  /* all slices on one NUMA node, or refuse */
	bool connected;   /* all devices linked by a fabric (LINK_FABRIC), or refuse */
	char *device;	  /* only slices of this device (id, short PCI address or UUID) */
};

void alloc_request_done(struct alloc_request *r);

/*
 * Picks the slices for @req among @slices that are free in @ledger and whose device in @devs is
 * healthy. On success *ret is a NULL-terminated strv of slice ids (best first) and 0 is
 * returned. Errors, each with a one-line malloc'd reason in *ret_error:
 *   -ENOENT   unknown resource, slice or device
 *   -EINVAL   count 0, or constraints that contradict each other or the explicit slices
 *   -EBUSY    an explicit slice is allocated already
 *   -ENOSPC   not enough free healthy slices (with the constraints: none satisfies them)
 */
int alloc_choose(const struct device_list *devs, const struct slice_list *slices,
		 const struct ledger *ledger, const struct alloc_request *req, char ***ret,
		 char **ret_error);

/* A workload shape for the fit question: how many such workloads fit here now. */
struct fit_request {
	uint64_t memory_bytes; /* per workload; 0: any */
	double compute;	       /* compute fraction per workload, 0 < c <= 1; 0: any */
	unsigned count;	       /* slices per workload, >= 1 */
	char *kind;	       /* "gpu", "accel", "fpga", or NULL: any */
	char *resource;	       /* only this resource, or NULL: any */
	bool numa_local;       /* each workload's slices on one NUMA node */
	bool connected;	       /* each workload's devices linked by a fabric */
};

struct fit_result {
	unsigned fits;	   /* how many workloads of the shape fit on the free slices */
	char **slices;	   /* the slices the first of them would get (NULL-terminated) */
	char *resource;	   /* the resource name that answers best (fewest wasted bytes) */
};

void fit_result_done(struct fit_result *r);
/*
 * 0 (fits may be 0) or -EINVAL (shape invalid, reason in *ret_error) or -ENOMEM. With
 * numa_local or connected (and more than one slice per workload), fits counts the workloads the
 * allocator would place one after the other, each on the slices the ones before left free, so
 * that topology and fragmentation count; otherwise it is the free slices over count.
 */
int alloc_fit(const struct device_list *devs, const struct slice_list *slices,
	      const struct ledger *ledger, const struct fit_request *req, struct fit_result *ret,
	      char **ret_error);
