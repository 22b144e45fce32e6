// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend's XIDs from the kernel log (its kmsg op): the driver prints every XID it
 * raises ("NVRM: Xid (PCI:...): N, ..."), read by nvidia-kmsg.c's parser. What an XID means is
 * the action table's (nvidia-xid.c), as for NVML's events: an application's error is logged
 * and leaves the GPU healthy; one that needs a reset or more makes the GPU unhealthy until it
 * is reset, or only its MIG device when the line names the GPU and compute instance (all the
 * MIG devices of the GPU instance when it names only that: the fault is the GPU instance's).
 * Lines the kernel did not print (facility other than the kernel's: a process wrote them to
 * /dev/kmsg) are not the driver's and are ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/nvidia-internal.h"
#include "backends/nvidia-kmsg.h"
#include "backends/nvidia-xid.h"
#include "shared/clock.h"
#include "shared/kmsg.h"
#include "shared/log.h"

/* The same XID line again within this time of the last one (kernel time) is a repeat. */
#define XID_REPEAT_USEC (5 * 1000000ULL)
/* One warning per interval for lines that look like an XID but cannot be read. */
#define XID_BAD_INTERVAL_USEC (60 * 1000000ULL)

/* Whether @addr is a GPU of NVML's last answer. */
static bool gpu_known(const struct nvidia *nv, const char *addr)
{
	return device_list_find(&nv->gpus, addr) != NULL;
}

/* GPU @addr unhealthy, for the first reason an event gave (@reason when none is kept). */
static int push_update(struct backend_update **u, size_t *n, const struct nvidia *nv,
		       const char *addr, const char *reason, enum health_action a)
{
	struct backend_update *m = realloc(*u, (*n + 1) * sizeof(*m));
	const char *kept = nvidia_sticky_reason(nv, addr);
	char *id, *why;

	if (!m)
		return -ENOMEM;
	*u = m;
	id = strdup(addr);
	why = strdup(kept ?: reason);
	if (!id || !why) {
		free(id);
		free(why);
		return -ENOMEM;
	}
	m[(*n)++] = (struct backend_update){
		.id = id,
		.health = { XPU_HEALTH_UNHEALTHY, why, kept ? nvidia_sticky_action(nv, addr) : a },
	};
	return 0;
}

/*
 * A fault of one MIG instance: the MIG device of GPU instance @x->gi, compute instance @x->ci;
 * or, for a line that names only the GPU instance, every MIG device of it. Returns how many
 * were marked (0: none of the last enumeration is that instance) or -ENOMEM.
 */
static int mark_migs(struct nvidia *nv, const struct nvidia_xid_line *x, const char *reason,
		     enum health_action a)
{
	int n = 0;

	for (size_t i = 0; i < nv->n_migs; i++) {
		const struct nvidia_mig *m = &nv->migs[i];

		if (!streq(m->addr, x->pci) || m->gi != x->gi ||
		    (x->has_ci && m->ci != x->ci))
			continue;
		log_device_full_errno(LOG_WARNING, 0, x->pci, x->pci, "GPU %s, MIG device %s: %s.",
				      x->pci, m->uuid, reason);
		if (nvidia_sticky_add(nv, x->pci, m->uuid, reason, a) < 0)
			return -ENOMEM;
		n++;
	}
	return n;
}

/* What one XID line means (see the top of the file). */
static int handle_xid(struct nvidia *nv, const struct config *config,
		      const struct nvidia_xid_line *x, struct backend_update **u, size_t *n,
		      bool *rescan)
{
	char reason[192], scope[64] = "", who[96] = "";
	enum health_action a;
	const char *what;
	int k;

	if (!gpu_known(nv, x->pci)) {
		log_device_full_errno(LOG_WARNING, 0, x->pci, x->pci,
				      "The kernel log reports XID %u for GPU %s, which NVML does not "
				      "list, ignoring.",
				      x->xid, x->pci);
		return 0;
	}
	if (x->has_gi && x->has_ci)
		snprintf(scope, sizeof(scope), " in GPU instance %u, compute instance %u", x->gi,
			 x->ci);
	else if (x->has_gi)
		snprintf(scope, sizeof(scope), " in GPU instance %u", x->gi);
	if (x->pid >= 0 || x->process[0])
		snprintf(who, sizeof(who), " (process %d %s)", x->pid, x->process);
	a = nvidia_xid_action(x->xid, config, &what);
	snprintf(reason, sizeof(reason), "XID %u (%s)%s: %s", x->xid, what, scope,
		 health_action_to_string(a));
	if (a < HEALTH_ACTION_RESET_DEVICE) {
		log_device_full_errno(LOG_INFO, 0, x->pci, x->pci,
				      "GPU %s: %s%s; the GPU stays healthy.", x->pci, reason, who);
		return 0;
	}
	if (x->has_gi) {
		k = mark_migs(nv, x, reason, a);
		if (k < 0)
			return k;
		if (k > 0) {
			/* the instance's slices, not the GPU and its other instances */
			*rescan = true;
			return 0;
		}
	}
	log_device_full_errno(LOG_WARNING, 0, x->pci, x->pci, "GPU %s: %s%s.", x->pci, reason,
			      who);
	if (nvidia_sticky_add(nv, x->pci, NULL, reason, a) < 0)
		return -ENOMEM;
	return push_update(u, n, nv, x->pci, reason, a);
}

static bool same_xid(const struct nvidia_kmsg_last *l, const struct nvidia_xid_line *x)
{
	return l->valid && streq(l->addr, x->pci) && l->xid == x->xid && l->has_gi == x->has_gi &&
	       l->has_ci == x->has_ci && l->gi == x->gi && l->ci == x->ci;
}

static void log_repeats(struct nvidia_kmsg_last *l)
{
	if (!l->repeats)
		return;
	log_device_full_errno(LOG_INFO, 0, l->addr, l->addr,
			      "The last XID of GPU %s in the kernel log repeated %u times.", l->addr,
			      l->repeats);
	l->repeats = 0;
}

static void bad_line(struct nvidia *nv, const struct kmsg_record *rec)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	char text[128];
	size_t i;

	for (i = 0; i < rec->msg_len && i + 1 < sizeof(text); i++)
		text[i] = rec->msg[i] >= 0x20 && rec->msg[i] <= 0x7e ? rec->msg[i] : '?';
	text[i] = '\0';
	if (nv->kmsg_bad_usec && now - nv->kmsg_bad_usec < XID_BAD_INTERVAL_USEC) {
		log_debug("Cannot read an XID line of the kernel log: '%s'.", text);
		return;
	}
	nv->kmsg_bad_usec = now;
	log_warning("Cannot read an XID line of the kernel log ('%s'), ignoring.", text);
}

/* One record: an XID line of the driver's is handled, unless it repeats the last one. */
static int handle_record(struct nvidia *nv, const struct config *config,
			 const struct kmsg_record *rec, struct backend_update **u, size_t *n,
			 bool *rescan)
{
	struct nvidia_kmsg_last *last = &nv->kmsg_last;
	struct nvidia_xid_line x;
	int r;

	if (rec->facility != 0)
		return 0;
	r = nvidia_kmsg_parse_xid(rec->msg, rec->msg_len, &x);
	if (r == -ENOMSG)
		return 0;
	if (r < 0) {
		bad_line(nv, rec);
		return 0;
	}
	if (same_xid(last, &x) && rec->usec >= last->usec &&
	    rec->usec - last->usec <= XID_REPEAT_USEC) {
		last->repeats++;
		last->usec = rec->usec;
		return 0;
	}
	log_repeats(last);
	*last = (struct nvidia_kmsg_last){ .valid = true,
					   .xid = x.xid,
					   .has_gi = x.has_gi,
					   .has_ci = x.has_ci,
					   .gi = x.gi,
					   .ci = x.ci,
					   .usec = rec->usec };
	memcpy(last->addr, x.pci, sizeof(last->addr));
	return handle_xid(nv, config, &x, u, n, rescan);
}

int nvidia_kmsg(struct xpu_backend *b, const struct kmsg_record *rec,
		struct backend_update **ret_updates, size_t *ret_n, bool *ret_rescan)
{
	struct nvidia *nv = b->userdata;
	struct backend_update *u = NULL;
	bool rescan = false;
	size_t n = 0;
	int r;

	if (!rec) {
		/* the end of a batch: a storm is counted per batch, and goes on counting */
		log_repeats(&nv->kmsg_last);
	} else {
		r = handle_record(nv, b->config, rec, &u, &n, &rescan);
		if (r < 0) {
			backend_updates_free(u, n);
			return r;
		}
	}
	*ret_updates = u;
	*ret_n = n;
	*ret_rescan = rescan;
	return 0;
}
