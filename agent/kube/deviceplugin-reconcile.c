// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The device plugin's view of kubelet's checkpoint (see deviceplugin-internal.h): the ledger
 * brought in line with which pod kubelet says holds what.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/checkpoint.h"
#include "kube/deviceplugin-internal.h"
#include "shared/clock.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/strv.h"

/* A grant kubelet has not written to its checkpoint yet is not withdrawn before this. */
#define UNCHECKPOINTED_GRACE_USEC (60 * 1000000ULL)

/* The entry of @entries that holds slice @id of @resource, or NULL. */
static const struct kubelet_entry *entry_holding(const struct kubelet_entry *e, size_t n,
						 const char *resource, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (streq(e[i].resource, resource) && strv_contains(e[i].ids, id))
			return &e[i];
	return NULL;
}

/*
 * Brings the ledger in line with who kubelet says holds what of the resources served here:
 * ids kubelet holds that no allocation does are recorded (after a restart of xpud, or a lost
 * state file), grants made through Allocate get their pod and container as owner, and pod
 * allocations kubelet no longer holds are released (a grant not yet in the checkpoint only after
 * a grace period: kubelet writes the checkpoint right after Allocate returns).
 */
void dp_reconcile(struct deviceplugin *p)
{
	_cleanup_free_ char *path = NULL, *text = NULL, *err = NULL;
	_cleanup_strv_free_ char **release = NULL;
	struct kubelet_entry *e = NULL;
	const struct ledger *l = allocations_ledger(p->allocations);
	size_t n = 0;
	int k;

	if (asprintf(&path, "%s/%s", p->dir, DP_CHECKPOINT_FILE) < 0)
		return (void)log_oom();
	k = read_attr_at(AT_FDCWD, path, 64 << 20, &text);
	if (k == -ENOENT)
		text = strdup("{}"); /* kubelet has not allocated anything yet */
	else if (k < 0)
		return (void)log_warning_errno(k, "Cannot read kubelet's checkpoint %s: %m", path);
	if (!text)
		return (void)log_oom();
	k = kubelet_checkpoint_parse(text, strlen(text), &e, &n, &err);
	if (k < 0)
		return (void)log_warning("Ignoring kubelet's checkpoint %s: %s", path,
					 err ?: strerror(-k));

	/* what kubelet holds: recorded, and owned by its pod and container */
	for (size_t i = 0; i < n; i++) {
		struct dp_resource *r = dp_resource_find(p, e[i].resource);
		_cleanup_strv_free_ char **fresh = NULL;
		_cleanup_free_ char *who = NULL;
		struct alloc_owner owner = { .kind = OWNER_POD };

		if (!r || asprintf(&who, "%s/%s", e[i].pod_uid, e[i].container) < 0)
			continue;
		owner.value = who;
		STRV_FOREACH(id, e[i].ids) {
			const struct allocation *a = ledger_find_slice(l, *id);

			if (!a) {
				if (dp_find_slice(p, r->name, *id) && strv_extend(&fresh, *id) < 0)
					goto oom;
			} else if (a->owner.kind == OWNER_POD &&
				   streq_ptr(a->owner.value, DP_OWNER_KUBELET)) {
				bool all_here = true;

				STRV_FOREACH(sid, a->slices)
					all_here = all_here && strv_contains(e[i].ids, *sid);
				if (all_here)
					(void)allocations_set_owner(p->allocations, a->id, &owner);
			}
		}
		if (fresh) {
			struct alloc_request req = { .resource = r->name, .slices = fresh,
						     .count = (unsigned)strv_length(fresh) };
			const struct allocation *a;
			_cleanup_free_ char *why = NULL;

			k = allocations_grant_reserved(p->allocations, &req, &owner, &a, &why);
			if (k < 0)
				log_warning("kubelet holds %s of %s for %s, which cannot be recorded: %s",
					    fresh[0], r->name, who, why ?: strerror(-k));
			else
				log_info("kubelet holds %zu slice%s of %s for %s: recorded as %s.",
					 strv_length(fresh), strv_length(fresh) == 1 ? "" : "s", r->name,
					 who, a->id);
		}
	}

	/* what it no longer holds: released */
	for (size_t i = 0; i < l->n; i++) {
		const struct allocation *a = l->items[i];
		bool held = false;

		if (a->owner.kind != OWNER_POD || !dp_resource_find(p, a->resource))
			continue;
		STRV_FOREACH(id, a->slices)
			held = held || entry_holding(e, n, a->resource, *id);
		if (held || (streq_ptr(a->owner.value, DP_OWNER_KUBELET) &&
			     a->created_usec + UNCHECKPOINTED_GRACE_USEC > now_usec(CLOCK_REALTIME)))
			continue;
		if (strv_extend(&release, a->id) < 0)
			goto oom;
	}
	STRV_FOREACH(id, release) {
		log_info("Allocation %s: kubelet no longer holds it (its pod is gone), releasing.",
			 *id);
		(void)allocations_release(p->allocations, *id, NULL);
	}
	kubelet_entries_free(e, n);
	return;
oom:
	kubelet_entries_free(e, n);
	(void)log_oom();
}

int dp_on_reconcile(sd_event_source *s, void *userdata)
{
	(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	dp_reconcile(userdata);
	return 0;
}

/* Coalesced: kubelet writes the checkpoint in several steps. */
void dp_schedule_reconcile(struct deviceplugin *p)
{
	if (p->reconcile)
		(void)sd_event_source_set_enabled(p->reconcile, SD_EVENT_ONESHOT);
}
