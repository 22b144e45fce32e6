/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the NVIDIA backend's files in xpud share. xpud never loads NVML or the CUDA driver API:
 * every call to them runs in the helper process (agent/xpud-helper.c, agent/runtimes/), started
 * through the one runner (shared/helper-run.h) and answering in the helper protocol
 * (core/helper-proto.h), its runs and last good answer kept by helper-backend.c. Here: nvidia.c
 * (the ops, what NVML's answer holds besides the GPUs),
 * nvidia-sticky.c (what the kernel log's XIDs said of each GPU until it is reset or gone),
 * nvidia-kmsg-events.c (what the kernel log's XID lines mean), nvidia-cuda.c (the CUDA helper's facts) and
 * nvidia-apply.c (MIG layouts and resets, off the loop).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/helper-backend.h"
#include "core/helper-proto.h"
#include "shared/helper-run.h"
#include "shared/kmsg.h"

#define NVIDIA_MAX_STICKY 128

/* A GPU the kernel log said needs a reset: unhealthy until it leaves NVML's list (reset or
 * removed) or xpud restarts. An XID that names one MIG instance (its GPU and compute instance
 * ids) makes only that instance's slice unhealthy, until the instance is gone (destroyed, or
 * its GPU reset). */
struct nvidia_sticky {
	char addr[13];
	char *slice; /* the MIG device's UUID, or NULL: the whole GPU */
	char *reason;
	enum health_action action; /* what the XID asked for: a reset or a reboot */
};

/* The last XID line of the kernel log that was handled (nvidia-kmsg-events.c): the same one
 * again soon after is a repeat (an XID storm), counted and not handled again. */
struct nvidia_kmsg_last {
	bool valid;
	char addr[13];
	unsigned xid;
	bool has_gi, has_ci;
	unsigned gi, ci;
	uint64_t usec;	  /* the kernel's timestamp of its last repeat */
	unsigned repeats; /* not yet logged */
};

/* Which GPU and compute instance a MIG device is (the helper's slice refs). */
struct nvidia_mig {
	char addr[13];
	unsigned gi, ci;
	char *uuid;
};

struct nvidia {
	/* The NVML helper's runs and what they answered (helper-backend.h). */
	struct helper_backend hb;
	const struct xpu_host *host; /* borrowed */
	const struct config *config; /* borrowed */
	char *cuda_path;	     /* the CUDA driver API's, or NULL: not used */

	/* The last good answer (hb's): the GPUs, the MIG devices' instance ids. */
	struct device_list gpus;
	struct nvidia_mig *migs;
	size_t n_migs;
	uint64_t sampled_usec; /* when an answer's samples were last let in (backends/samples.h) */

	/* Shared with the threads of applies and resets, under lock. */
	pthread_mutex_t lock;
	struct helper_reply *fresh; /* an answer a thread got after changing a GPU */
	char reset_addr[64][13];    /* GPUs reset since the loop last looked */
	size_t n_reset;

	/* What the kernel log said (loop only). */
	struct nvidia_sticky sticky[NVIDIA_MAX_STICKY];
	size_t n_sticky;
	struct nvidia_kmsg_last kmsg_last;
	uint64_t kmsg_bad_usec; /* when a garbled XID line was last warned about */

	/* The CUDA helper: run once after the first inventory. */
	struct helper_run *cuda_run;
	bool cuda_done;
	struct helper_reply cuda;
};

/* nvidia.c */

/* Hands an answer a thread got to the loop (taken at the next enumeration). */
void nvidia_offer_fresh(struct nvidia *nv, struct helper_reply *r);

/* nvidia-sticky.c: what the kernel log said of the GPUs and their MIG devices (loop only). */
const char *nvidia_sticky_reason(const struct nvidia *nv, const char *addr);
enum health_action nvidia_sticky_action(const struct nvidia *nv, const char *addr);
int nvidia_sticky_add(struct nvidia *nv, const char *addr, const char *slice, const char *reason,
		      enum health_action action);
int nvidia_sticky_apply(const struct nvidia *nv, struct xpu_device *d);
void nvidia_sticky_prune(struct nvidia *nv);
void nvidia_sticky_take_resets(struct nvidia *nv);
void nvidia_sticky_clear(struct nvidia *nv);
const char *nvidia_mig_uuid_of(const struct nvidia *nv, const char *addr, unsigned gi,
			       unsigned ci);
int nvidia_update_push(struct backend_update **u, size_t *n, const char *addr,
		       const char *reason, enum health_action action);

/* nvidia-kmsg-events.c: the kernel log's XID lines, the backend's kmsg op. */
int nvidia_kmsg(struct xpu_backend *b, const struct kmsg_record *rec,
		struct backend_update **ret_updates, size_t *ret_n, bool *ret_rescan);

/* nvidia-cuda.c: the CUDA helper. */
void nvidia_cuda_start(struct nvidia *nv);
int nvidia_add_cuda_facts(const struct nvidia *nv, struct xpu_device *d);

/* nvidia-apply.c: the ops that change a GPU (threads off the loop). */
int nvidia_apply_offer(struct xpu_backend *b, const struct xpu_device *d, const struct offer *o,
		       char **ret_error);
int nvidia_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason);
