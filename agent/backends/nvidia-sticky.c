// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the kernel log's XIDs said of each GPU and MIG device, until it no longer exists as it was:
 * a GPU that leaves NVML's list (reset, removed), a MIG device destroyed, a GPU reset by xpud.
 * Loop only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/nvidia-internal.h"
#include "shared/log.h"

static const char *sticky_find(const struct nvidia *nv, const char *addr, const char *slice)
{
	for (size_t i = 0; i < nv->n_sticky; i++)
		if (streq(nv->sticky[i].addr, addr) && streq_ptr(nv->sticky[i].slice, slice))
			return nv->sticky[i].reason;
	return NULL;
}

/* Why the whole GPU @addr is unhealthy by an XID, or NULL. */
const char *nvidia_sticky_reason(const struct nvidia *nv, const char *addr)
{
	return sticky_find(nv, addr, NULL);
}

/* What the XID that made the whole GPU @addr unhealthy asked for. */
enum health_action nvidia_sticky_action(const struct nvidia *nv, const char *addr)
{
	for (size_t i = 0; i < nv->n_sticky; i++)
		if (streq(nv->sticky[i].addr, addr) && !nv->sticky[i].slice)
			return nv->sticky[i].action;
	return HEALTH_ACTION_IGNORE;
}

/* Records that @addr (or its MIG device @slice, when not NULL) needs @action (a reset or more);
 * the first reason stands. 0 or -ENOMEM. */
int nvidia_sticky_add(struct nvidia *nv, const char *addr, const char *slice, const char *reason,
		      enum health_action action)
{
	struct nvidia_sticky *st;

	if (sticky_find(nv, addr, slice) || nv->n_sticky >= ELEMENTSOF(nv->sticky))
		return 0;
	st = &nv->sticky[nv->n_sticky];
	*st = (struct nvidia_sticky){ .action = action };
	memcpy(st->addr, addr, 13);
	if (!(st->reason = strdup(reason)) || (slice && !(st->slice = strdup(slice)))) {
		free(st->reason);
		return -ENOMEM;
	}
	nv->n_sticky++;
	return 0;
}

/* Marks @d, and the MIG devices of it an XID named, unhealthy for what the log said. 0 or
 * -ENOMEM. */
int nvidia_sticky_apply(const struct nvidia *nv, struct xpu_device *d)
{
	const char *why = nvidia_sticky_reason(nv, d->id);

	if (why && device_set_fault(d, nvidia_sticky_action(nv, d->id), "%s", why) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < d->n_partitions; i++) {
		struct xpu_slice *p = d->partitions[i];

		why = sticky_find(nv, d->id, p->id);
		if (!why || p->health.state == XPU_HEALTH_UNHEALTHY)
			continue;
		p->health.state = XPU_HEALTH_UNHEALTHY;
		p->health.reason = strdup(why);
		if (!p->health.reason)
			return -ENOMEM;
	}
	return 0;
}

static bool mig_present(const struct nvidia *nv, const char *addr, const char *uuid)
{
	for (size_t i = 0; i < nv->n_migs; i++)
		if (streq(nv->migs[i].addr, addr) && streq(nv->migs[i].uuid, uuid))
			return true;
	return false;
}

static void sticky_drop(struct nvidia_sticky *st)
{
	free(st->reason);
	free(st->slice);
}

/* Drops the sticky state of GPUs the last answer does not list (reset, or gone) and of MIG
 * devices that no longer exist (destroyed, or their GPU reset). */
void nvidia_sticky_prune(struct nvidia *nv)
{
	size_t k = 0;

	for (size_t i = 0; i < nv->n_sticky; i++) {
		struct nvidia_sticky *st = &nv->sticky[i];
		bool keep = device_list_find(&nv->gpus, st->addr) != NULL;

		if (keep && st->slice)
			keep = mig_present(nv, st->addr, st->slice);
		if (keep) {
			nv->sticky[k++] = *st;
			continue;
		}
		if (st->slice)
			log_device_full_errno(LOG_NOTICE, 0, st->addr, st->addr,
					      "MIG device %s of GPU %s is gone; what the kernel "
					      "log said of it (%s) is cleared.",
					      st->slice, st->addr, st->reason);
		else
			log_device_full_errno(LOG_NOTICE, 0, st->addr, st->addr,
					      "GPU %s left NVML's list; what the kernel log said "
					      "of it (%s) is cleared.",
					      st->addr, st->reason);
		sticky_drop(st);
	}
	nv->n_sticky = k;
}

/* Forgets the sticky state of the GPUs reset since the last look. */
void nvidia_sticky_take_resets(struct nvidia *nv)
{
	char addr[ELEMENTSOF(nv->reset_addr)][13];
	size_t n;

	pthread_mutex_lock(&nv->lock);
	n = nv->n_reset;
	memcpy(addr, nv->reset_addr, n * sizeof(addr[0]));
	nv->n_reset = 0;
	pthread_mutex_unlock(&nv->lock);
	for (size_t j = 0; j < n; j++) {
		size_t k = 0;

		for (size_t i = 0; i < nv->n_sticky; i++) {
			if (!streq(nv->sticky[i].addr, addr[j])) {
				nv->sticky[k++] = nv->sticky[i];
				continue;
			}
			sticky_drop(&nv->sticky[i]);
		}
		nv->n_sticky = k;
	}
}

void nvidia_sticky_clear(struct nvidia *nv)
{
	for (size_t i = 0; i < nv->n_sticky; i++)
		sticky_drop(&nv->sticky[i]);
	nv->n_sticky = 0;
}

/* The MIG device that GPU instance @gi / compute instance @ci of @addr is, or NULL. */
const char *nvidia_mig_uuid_of(const struct nvidia *nv, const char *addr, unsigned gi,
			       unsigned ci)
{
	for (size_t i = 0; i < nv->n_migs; i++)
		if (streq(nv->migs[i].addr, addr) && nv->migs[i].gi == gi && nv->migs[i].ci == ci)
			return nv->migs[i].uuid;
	return NULL;
}

/* Appends "@addr is unhealthy for @reason" to an update list. 0 or -ENOMEM. */
int nvidia_update_push(struct backend_update **u, size_t *n, const char *addr,
		       const char *reason, enum health_action action)
{
	struct backend_update *m = realloc(*u, (*n + 1) * sizeof(*m));

	if (!m)
		return -ENOMEM;
	*u = m;
	m[*n] = (struct backend_update){ .id = strdup(addr),
					 .health = { XPU_HEALTH_UNHEALTHY, strdup(reason),
						     action } };
	if (!m[*n].id || !m[*n].health.reason) {
		free(m[*n].id);
		free(m[*n].health.reason);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}
