// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/plan.h"
#include "core/rules.h"
#include "core/state.h"
#include "shared/parse.h"
#include "shared/strv.h"

static const struct offer offer_whole = { .kind = OFFER_WHOLE };

void slice_list_clear(struct slice_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		slice_free(l->items[i]);
	free(l->items);
	*l = (struct slice_list){};
}

/* Takes @s (freed on failure). */
static int slice_list_push(struct slice_list *l, struct xpu_slice *s)
{
	struct xpu_slice **m = realloc(l->items, (l->n + 1) * sizeof(*m));

	if (!m) {
		slice_free(s);
		return -ENOMEM;
	}
	l->items = m;
	l->items[l->n++] = s;
	return 0;
}

static void slice_list_truncate(struct slice_list *l, size_t n)
{
	while (l->n > n)
		slice_free(l->items[--l->n]);
}

static const char *device_resource(const struct xpu_device *d)
{
	return d->resource ?: "xpu.dev/unknown";
}

/*
 * A partition the backend reported, as a slice: the device's own nodes (a MIG instance is
 * reached through its GPU's) plus the partition's, its environment over the device's.
 */
static int slice_partition(const struct xpu_device *d, const struct xpu_slice *p,
			   const char *resource, struct xpu_slice **ret)
{
	_cleanup_(slice_freep) struct xpu_slice *s = NULL;
	int r;

	r = slice_dup(p, &s);
	if (r < 0)
		return r;
	if (device_set_string(&s->device_id, d->id) < 0 ||
	    (resource && device_set_string(&s->resource, resource) < 0))
		return -ENOMEM;
	strv_free(s->device_nodes);
	s->device_nodes = NULL;
	if (strv_copy(d->device_nodes, &s->device_nodes) < 0)
		return -ENOMEM;
	STRV_FOREACH(n, p->device_nodes)
		if (strv_extend_unique(&s->device_nodes, *n) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(s);
	return 0;
}

/* A slice of all of @d: its memory, nodes and environment, under @id and @resource. */
static int slice_device(const struct xpu_device *d, const char *id, const char *resource,
			struct xpu_slice **ret)
{
	_cleanup_(slice_freep) struct xpu_slice *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->compute_fraction = 1.0;
	s->memory_bytes = d->memory_bytes;
	if (!(s->id = strdup(id)) || !(s->device_id = strdup(d->id)) ||
	    !(s->resource = strdup(resource)) || strv_copy(d->device_nodes, &s->device_nodes) < 0 ||
	    strv_copy(d->env, &s->env) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(s);
	return 0;
}

/* The device as it is: its partitions if the backend reported any (or it can be used through
 * partitions only), else the whole device. */
static int plan_whole(const struct xpu_device *d, const struct offer *o, struct slice_list *l)
{
	struct xpu_slice *s;
	int r;

	if (d->n_partitions == 0 && !d->partitioned) {
		r = slice_device(d, d->id, o->resource ?: device_resource(d), &s);
		return r < 0 ? r : slice_list_push(l, s);
	}
	for (size_t i = 0; i < d->n_partitions; i++) {
		r = slice_partition(d, d->partitions[i], o->resource, &s);
		if (r >= 0)
			r = slice_list_push(l, s);
		if (r < 0)
			return r;
	}
	return 0;
}

/* "80GiB", or MiB where that is not whole, or bytes under 1MiB. */
static void format_size(uint64_t bytes, char buf[static 32])
{
	if (bytes % (1ULL << 30) == 0 && bytes > 0)
		snprintf(buf, 32, "%lluGiB", (unsigned long long)(bytes >> 30));
	else if (bytes < (1ULL << 20))
		snprintf(buf, 32, "%lluB", (unsigned long long)bytes);
	else
		snprintf(buf, 32, "%lluMiB", (unsigned long long)(bytes >> 20));
}

/* The least memory share of @d: its source's, and never under OFFER_MIN_SHARE_BYTES. */
static uint64_t min_share(const struct xpu_device *d)
{
	return MAX(d->rules ? d->rules->min_share_bytes : 0, OFFER_MIN_SHARE_BYTES);
}

/* What @d's partitioning is called in messages. */
static const char *scheme_label(const struct xpu_device *d)
{
	return d->rules && d->rules->scheme ? d->rules->scheme->label : "partitioning";
}

/* Why replicas or shares of @d cannot be offered as @o asks (malloc'd), or NULL. */
static int shared_blocked(const struct xpu_device *d, const struct offer *o, char **ret_reason)
{
	const char *what = o->kind == OFFER_REPLICAS ? "replicas" : "memory shares";
	char have[32], want[32];
	int r = 0;

	*ret_reason = NULL;
	if (d->partitioned || d->n_partitions > 0)
		r = asprintf(ret_reason, "%s is enabled: %s need %s disabled", scheme_label(d),
			     what, scheme_label(d));
	else if (o->kind == OFFER_REPLICAS)
		return 0;
	else if (o->share_bytes == 0 && d->memory_bytes == 0)
		r = asprintf(ret_reason,
			     "the device's memory size is unknown: memory shares need a size");
	else if ((o->share_bytes ?: d->memory_bytes / o->count) < min_share(d)) {
		/* a size from before it was checked, or a device too small to divide */
		format_size(o->share_bytes ?: d->memory_bytes / o->count, want);
		format_size(min_share(d), have);
		r = asprintf(ret_reason, "memory shares of %s are under %s, %s", want, have,
			     d->rules && d->rules->min_share_why ? d->rules->min_share_why
								 : "the least xpud offers");
	} else if (o->share_bytes && d->memory_bytes && o->share_bytes > d->memory_bytes / o->count) {
		format_size(o->share_bytes, want);
		format_size(d->memory_bytes, have);
		r = asprintf(ret_reason, "%u memory shares of %s do not fit in the device's %s",
			     o->count, want, have);
	}
	return r < 0 ? -ENOMEM : 0;
}

/* Replicas or memory shares: time-shared slices of the whole device. */
static int plan_shared(const struct xpu_device *d, const struct offer *o, struct slice_list *l)
{
	bool shares = o->kind == OFFER_MEMORY_SHARES;
	uint64_t memory = shares ? (o->share_bytes ?: d->memory_bytes / o->count) : d->memory_bytes;
	double compute = shares && o->compute > 0 ? o->compute : 1.0 / o->count;
	_cleanup_free_ char *resource = NULL;

	if (o->resource ? !(resource = strdup(o->resource))
			: asprintf(&resource, "%s.shared", device_resource(d)) < 0)
		return -ENOMEM;
	for (unsigned i = 0; i < o->count; i++) {
		_cleanup_(slice_freep) struct xpu_slice *s = NULL;
		_cleanup_free_ char *id = NULL;
		int r;

		if (asprintf(&id, "%s/%s-%u", d->id, shares ? "share" : "replica", i) < 0)
			return -ENOMEM;
		r = slice_device(d, id, resource, &s);
		if (r < 0)
			return r;
		s->shared = true;
		s->memory_bytes = memory;
		s->compute_fraction = compute;
		if (shares && d->rules && d->rules->share_edits &&
		    (r = d->rules->share_edits(d, s)) < 0)
			return r;
		r = slice_list_push(l, TAKE_PTR(s));
		if (r < 0)
			return r;
	}
	return 0;
}

/* How many instances of @profile the device holds in all; 0 when it does not list it. */
static unsigned profile_total(const struct xpu_device *d, const char *profile)
{
	const struct xpu_partition_profile *p = device_find_profile(d, profile);

	return p ? p->total : 0;
}

/* "1g.10gb*7,3g.40gb" from a sorted list; "none" for an empty one. */
static char *layout_string(char **sorted)
{
	_cleanup_strv_free_ char **items = NULL;

	for (size_t i = 0; sorted && sorted[i];) {
		size_t n = 1;

		while (sorted[i + n] && streq(sorted[i + n], sorted[i]))
			n++;
		if (n > 1 ? strv_extendf(&items, "%s*%zu", sorted[i], n) < 0
			  : strv_extend(&items, sorted[i]) < 0)
			return NULL;
		i += n;
	}
	return items ? strv_join(items, ",") : strdup("none");
}

/* The profile @p of a layout names: "all-X" and "X" both name X. */
static const char *layout_profile(const char *p)
{
	return strncmp(p, "all-", 4) == 0 ? p + 4 : p;
}

/* Why the partitions of @d are not the layout @o declares (malloc'd), or NULL; *ret_apply
 * when applying @o would make them so. */
static int layout_differs(const struct xpu_device *d, const struct offer *o, char **ret_reason,
			  bool *ret_apply)
{
	_cleanup_strv_free_ char **declared = NULL, **present = NULL;
	_cleanup_free_ char *want = NULL, *have = NULL;

	*ret_reason = NULL;
	STRV_FOREACH(p, o->layout) {
		const char *profile = layout_profile(*p);
		unsigned n = profile != *p ? profile_total(d, profile) : 1;

		for (unsigned i = 0; i < n; i++)
			if (strv_extend(&declared, profile) < 0)
				return -ENOMEM;
	}
	for (size_t i = 0; i < d->n_partitions; i++)
		if (strv_extend(&present, d->partitions[i]->profile ?: "?") < 0)
			return -ENOMEM;
	strv_sort(declared);
	strv_sort(present);
	if (strv_equal(declared, present))
		return 0;
	*ret_apply = true;
	want = layout_string(declared);
	have = layout_string(present);
	if (!want || !have ||
	    asprintf(ret_reason, "declared %s layout not applied yet: declared %s, present %s",
		     o->scheme->label, want, have) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * Why the layout @o declares cannot be made on @d (malloc'd in *ret_reason), or nothing: a
 * profile the device does not list (in the list form as in "all-<profile>": neither can ever
 * be made), more instances of one than it holds, more memory or compute than it has. A device
 * that does not say which profiles it has is not judged. 0 or -ENOMEM.
 */
static int layout_impossible(const struct xpu_device *d, const struct offer *o,
			     char **ret_reason)
{
	uint64_t memory = 0;
	double compute = 0;
	char want[32], have[32];
	int r = 0;

	if (d->n_profiles == 0)
		return 0;
	STRV_FOREACH(p, o->layout) {
		const char *profile = layout_profile(*p);
		const struct xpu_partition_profile *pr = device_find_profile(d, profile);
		unsigned n = 0;

		if (!pr) {
			r = asprintf(ret_reason, "declared %s layout not applied yet: the %s does not "
						 "list profile %s",
				     o->scheme->label, o->scheme->noun, profile);
			return r < 0 ? -ENOMEM : 0;
		}
		if (profile != *p)
			continue;
		STRV_FOREACH(q, o->layout)
			n += streq(*q, *p);
		if (n > pr->total) {
			r = asprintf(ret_reason, "declared layout cannot be made: %u instances of %s, "
						 "the device holds %u at most",
				     n, *p, pr->total);
			return r < 0 ? -ENOMEM : 0;
		}
		memory += pr->memory_bytes;
		compute += pr->compute_fraction;
	}
	if (d->memory_bytes && memory > d->memory_bytes) {
		format_size(memory, want);
		format_size(d->memory_bytes, have);
		r = asprintf(ret_reason, "declared layout cannot be made: its instances need %s of "
					 "memory, the device has %s",
			     want, have);
	} else if (compute > 1.0 + 1e-6) {
		r = asprintf(ret_reason, "declared layout cannot be made: its instances need %.0f%% "
					 "of the device's compute",
			     compute * 100);
	}
	return r < 0 ? -ENOMEM : 0;
}

/* Why a partition offer is not in effect on a device whose partition mode is off (malloc'd). */
static int mode_off_reason(const struct offer *o, const struct xpu_device *d, char **ret_reason,
			   bool *ret_apply)
{
	const struct partition_scheme *sc = o->scheme;

	if (d->partition_pending)
		return asprintf(ret_reason, "%s mode enabled, takes effect after a %s reset",
				sc->label, sc->noun);
	/* never touched without the operator's word: switching the mode on takes the device
	 * from its users */
	*ret_apply = o->enable && sc->enable_key;
	if (o->enable || !sc->enable_key)
		return asprintf(ret_reason, "declared %s layout not applied yet: %s is disabled on "
					    "this %s",
				sc->label, sc->label, sc->noun);
	return asprintf(ret_reason, "declared %s layout not applied yet: %s is disabled on this %s "
				    "(%s: true lets xpud enable it)",
			sc->label, sc->label, sc->noun, sc->enable_key);
}

/*
 * An offer of a scheme of modes (a mode the device is switched into, making its partitions):
 * the device's mode is its partitions' profile, or the scheme's first mode (the undivided one)
 * when it has none. The declared mode in effect: its partitions (or the whole device) are the
 * slices. Another: offered as it is, with the reason, to be switched (*ret_apply).
 */
static int plan_mode(const struct xpu_device *d, const struct offer *o, struct slice_list *l,
		     char **ret_reason, bool *ret_as_is, bool *ret_apply)
{
	const struct partition_scheme *sc = o->scheme;
	const char *present = d->n_partitions ? d->partitions[0]->profile : sc->modes[0];

	if (streq_ptr(present, o->layout ? o->layout[0] : NULL)) {
		*ret_as_is = false;
		return plan_whole(d, o, l);
	}
	*ret_apply = true;
	return asprintf(ret_reason, "declared %s layout not applied yet: declared %s, present %s",
			sc->label, o->layout ? o->layout[0] : "none", present ?: "unknown") < 0
		       ? -ENOMEM
		       : 0;
}

/*
 * A partition offer on @d: its slices are the partitions that exist (@ret_as_is false), or the
 * reason it is not in effect in *ret_reason (@ret_as_is: the device is offered as it is).
 */
static int plan_partitions(const struct xpu_device *d, const struct offer *o,
			   struct slice_list *l, char **ret_reason, bool *ret_as_is,
			   bool *ret_apply)
{
	const struct partition_scheme *sc = o->scheme;
	int r;

	*ret_as_is = true;
	if (!sc)
		return asprintf(ret_reason, "unknown offer") < 0 ? -ENOMEM : 0;
	if (!d->rules || d->rules->scheme != sc)
		return asprintf(ret_reason, "%s", sc->only_for) < 0 ? -ENOMEM : 0;
	if (!d->partition_capable && sc->not_capable)
		return asprintf(ret_reason, "%s", sc->not_capable) < 0 ? -ENOMEM : 0;
	r = layout_impossible(d, o, ret_reason);
	if (r < 0 || *ret_reason)
		return r;
	if (sc->modes)
		return plan_mode(d, o, l, ret_reason, ret_as_is, ret_apply);
	if (!d->partitioned)
		return mode_off_reason(o, d, ret_reason, ret_apply) < 0 ? -ENOMEM : 0;
	/* the partitions that exist are the slices, whatever the layout */
	*ret_as_is = false;
	r = layout_differs(d, o, ret_reason, ret_apply);
	return r < 0 ? r : plan_whole(d, o, l);
}

/*
 * Appends @d's slices under @o to @l. When @o cannot be carried out as declared, *ret_reason
 * says why (the caller shows @o as pending), and where that leaves the device as it is,
 * *ret_applied is the whole offer (else @o); *ret_apply says whether the backend could carry it
 * out now. 0 or -ENOMEM.
 */
static int plan_offer(const struct xpu_device *d, const struct offer *o, struct slice_list *l,
		      const struct offer **ret_applied, char **ret_reason, bool *ret_apply)
{
	_cleanup_free_ char *reason = NULL;
	bool as_is = false; /* offered as the device is, with @reason */
	bool apply = false;
	int r = 0;

	switch (o->kind) {
	case OFFER_WHOLE:
		r = plan_whole(d, o, l);
		break;
	case OFFER_REPLICAS:
	case OFFER_MEMORY_SHARES:
		r = shared_blocked(d, o, &reason);
		if (r >= 0 && !reason)
			r = plan_shared(d, o, l);
		as_is = reason;
		break;
	case OFFER_PARTITIONS:
		r = plan_partitions(d, o, l, &reason, &as_is, &apply);
		break;
	default:
		as_is = true;
		r = asprintf(&reason, "unknown offer");
		break;
	}
	if (r < 0)
		return -ENOMEM;
	if (as_is) {
		r = plan_whole(d, &offer_whole, l);
		if (r < 0)
			return r;
	}
	*ret_applied = as_is ? &offer_whole : o;
	*ret_reason = TAKE_PTR(reason);
	*ret_apply = apply && *ret_reason;
	return 0;
}

static int device_plan_fill(struct device_plan *dp, const struct offer *applied,
			    const struct offer *pending, char *reason, bool apply)
{
	dp->pending_reason = reason;
	dp->apply_needed = apply;
	if (offer_copy(applied, &dp->applied) < 0)
		return -ENOMEM;
	if (pending) {
		if (offer_copy(pending, &dp->pending) < 0)
			return -ENOMEM;
		dp->has_pending = true;
	}
	return 0;
}

/* One device: @want is what the policy asks, @before what was applied (may be NULL). */
static int plan_device(const struct xpu_device *d, const struct offer *want,
		       const struct offer *before, const struct ledger *ledger,
		       struct slice_list *l, struct device_plan *dp)
{
	const struct offer *applied;
	char *reason = NULL;
	size_t mark = l->n;
	bool apply;
	int r;

	if (before && !offer_equal(before, want)) {
		unsigned busy = 0;

		r = plan_offer(d, before, l, &applied, &reason, &apply);
		if (r < 0)
			return r;
		reason = mfree(reason);
		for (size_t i = mark; i < l->n; i++)
			busy += !!ledger_find_slice(ledger, l->items[i]->id);
		/* an offer that gives the very same slices (whole, or the MIG instances it has)
		 * takes over at once: nothing is withdrawn, nothing waits */
		if (busy > 0 && (r = plan_offer_unchanged(d, before, want)) != 0) {
			if (r < 0)
				return r;
			busy = 0;
		}
		if (busy > 0) {
			/* no allocated slice is withdrawn: the old offer stays until released */
			if (asprintf(&reason, "%u slice%s allocated", busy, busy == 1 ? "" : "s") < 0)
				return -ENOMEM;
			dp->busy = busy;
			return device_plan_fill(dp, applied, want, reason, false);
		}
		slice_list_truncate(l, mark);
	}
	r = plan_offer(d, want, l, &applied, &reason, &apply);
	if (r < 0)
		return r;
	return device_plan_fill(dp, applied, reason ? want : NULL, reason, apply);
}

int plan_offer_check(const struct xpu_device *d, const struct offer *o, char **ret_reason)
{
	struct slice_list l = {};
	const struct offer *applied;
	_cleanup_free_ char *reason = NULL;
	bool apply = false;
	int r;

	r = plan_offer(d, o, &l, &applied, &reason, &apply);
	slice_list_clear(&l);
	if (r < 0)
		return r;
	if (!reason || apply)
		return 1;
	*ret_reason = TAKE_PTR(reason);
	return 0;
}

/* Whether two slice lists offer the same: ids, resources, sizes and sharing. */
static bool slices_same(const struct slice_list *a, const struct slice_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct xpu_slice *x = a->items[i], *y = b->items[i];

		if (!streq_ptr(x->id, y->id) || !streq_ptr(x->resource, y->resource) ||
		    x->memory_bytes != y->memory_bytes || x->shared != y->shared ||
		    x->compute_fraction != y->compute_fraction)
			return false;
	}
	return true;
}

int plan_offer_unchanged(const struct xpu_device *d, const struct offer *current,
			 const struct offer *o)
{
	struct slice_list now = {}, then = {};
	const struct offer *applied;
	_cleanup_free_ char *reason = NULL, *reason_now = NULL;
	bool apply = false;
	int r;

	r = plan_offer(d, o, &then, &applied, &reason, &apply);
	if (r >= 0 && !reason)
		r = plan_offer(d, current, &now, &applied, &reason_now, &apply);
	if (r >= 0)
		r = !reason && !reason_now && slices_same(&now, &then);
	slice_list_clear(&now);
	slice_list_clear(&then);
	return r;
}

void plan_done(struct plan *p)
{
	slice_list_clear(&p->slices);
	for (size_t i = 0; i < p->n_devices; i++) {
		free(p->devices[i].device_id);
		offer_done(&p->devices[i].applied);
		offer_done(&p->devices[i].pending);
		free(p->devices[i].pending_reason);
	}
	free(p->devices);
	*p = (struct plan){};
}

const struct offer *plan_wanted_offer(const struct policy *pol, const struct state *st,
				      const struct xpu_device *d)
{
	const struct repartition *rp = state_repartition(st, d->id);

	/* a policy's repartition carries the policy's offer of when it began, until it ends */
	if (rp && rp->by_policy)
		return &rp->target;
	return state_layout(st, d->id) ?: policy_offer_for(pol, d);
}

char *plan_withdrawn_reason(const struct state *st, const char *device_id)
{
	const struct repartition *rp = state_repartition(st, device_id);
	const struct device_cordon *c = state_cordon(st, device_id);
	_cleanup_free_ char *what = NULL;
	char *reason = NULL;

	if (rp) {
		what = offer_to_string(&rp->target);
		if (!what || asprintf(&reason, "repartitioning to %s (%s)", what,
				      repartition_phase_to_string(rp->phase)) < 0)
			return NULL;
		return reason;
	}
	if (c && asprintf(&reason, "cordoned: %s", c->reason) < 0)
		return NULL;
	return reason;
}

/* The free slices of a cordoned or repartitioning device, from @mark on, are not offered. */
static int plan_withdraw(const struct state *st, const char *device_id, struct slice_list *l,
			 size_t mark)
{
	_cleanup_free_ char *reason = NULL;

	if (!state_cordon(st, device_id) && !state_repartition(st, device_id))
		return 0;
	reason = plan_withdrawn_reason(st, device_id);
	if (!reason)
		return -ENOMEM;
	for (size_t i = mark; i < l->n; i++) {
		struct xpu_slice *s = l->items[i];

		/* what is in use keeps running; it is withdrawn once released. A slice that is
		 * unhealthy already keeps its own reason. */
		if (ledger_find_slice(&st->ledger, s->id) || s->health.state != XPU_HEALTH_HEALTHY)
			continue;
		if (device_set_string(&s->health.reason, reason) < 0)
			return -ENOMEM;
		s->health.state = XPU_HEALTH_UNHEALTHY;
	}
	return 0;
}

int plan_build(const struct device_list *devs, const struct policy *pol, const struct state *st,
	       struct plan *ret)
{
	struct plan p = {};

	p.devices = calloc(devs->n ?: 1, sizeof(*p.devices));
	if (!p.devices)
		return -ENOMEM;
	for (size_t i = 0; i < devs->n; i++) {
		const struct xpu_device *d = devs->items[i];
		struct device_plan *dp = &p.devices[p.n_devices++];
		int r = -ENOMEM;

		size_t mark = p.slices.n;

		if ((dp->device_id = strdup(d->id)))
			r = plan_device(d, plan_wanted_offer(pol, st, d), state_applied(st, d->id),
					st ? &st->ledger : NULL, &p.slices, dp);
		if (r >= 0)
			r = plan_withdraw(st, d->id, &p.slices, mark);
		if (r < 0) {
			plan_done(&p);
			return r;
		}
	}
	*ret = p;
	return 0;
}

int plan_slices(const struct device_list *devices, struct slice_list *ret)
{
	struct plan p;
	int r;

	r = plan_build(devices, NULL, NULL, &p);
	if (r < 0)
		return r;
	*ret = p.slices;
	p.slices = (struct slice_list){};
	plan_done(&p);
	return 0;
}

const struct device_plan *plan_find_device(const struct plan *p, const char *id)
{
	for (size_t i = 0; i < p->n_devices; i++)
		if (streq(p->devices[i].device_id, id))
			return &p->devices[i];
	return NULL;
}

int plan_commit(const struct plan *p, struct state *st)
{
	int changed = 0;

	for (size_t i = 0; i < p->n_devices; i++) {
		const struct device_plan *dp = &p->devices[i];
		const struct offer *before = state_applied(st, dp->device_id);

		if (before && offer_equal(before, &dp->applied))
			continue;
		if (state_set_applied(st, dp->device_id, &dp->applied) < 0)
			return -ENOMEM;
		changed = 1;
	}
	for (size_t i = st->n_applied; i-- > 0;)
		if (!plan_find_device(p, st->applied[i].device_id)) {
			state_unset_applied(st, st->applied[i].device_id);
			changed = 1;
		}
	return changed;
}

void plan_attempts_clear(struct plan_attempts *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->items[i].device_id);
		offer_done(&a->items[i].offer);
		free(a->items[i].fingerprint);
		free(a->items[i].reason);
	}
	free(a->items);
	*a = (struct plan_attempts){};
}

char *plan_device_fingerprint(const struct xpu_device *d)
{
	_cleanup_strv_free_ char **ids = NULL;
	_cleanup_free_ char *joined = NULL;
	char *s;

	for (size_t i = 0; i < d->n_partitions; i++)
		if (strv_extend(&ids, d->partitions[i]->id ?: "?") < 0)
			return NULL;
	strv_sort(ids);
	joined = ids ? strv_join(ids, ",") : strdup("");
	if (!joined || asprintf(&s, "partitioned=%s/%s;%s",
				!d->partition_capable ? "-"
				: d->partitioned      ? "enabled"
						      : "disabled",
				!d->partition_capable  ? "-"
				: d->partition_pending ? "enabled"
						       : "disabled",
				joined) < 0)
		return NULL;
	return s;
}

static struct plan_attempt *attempt_find(const struct plan_attempts *a, const char *device_id)
{
	for (size_t i = 0; a && i < a->n; i++)
		if (streq(a->items[i].device_id, device_id))
			return &a->items[i];
	return NULL;
}

int plan_attempts_record(struct plan_attempts *a, const struct xpu_device *d,
			 const struct offer *o, const char *reason)
{
	struct plan_attempt n = {}, *slot = attempt_find(a, d->id);

	if (!(n.device_id = strdup(d->id)) || offer_copy(o, &n.offer) < 0 ||
	    !(n.fingerprint = plan_device_fingerprint(d)) || !(n.reason = strdup(reason)))
		goto oom;
	if (!slot) {
		struct plan_attempt *m = realloc(a->items, (a->n + 1) * sizeof(*m));

		if (!m)
			goto oom;
		a->items = m;
		slot = &a->items[a->n++];
	} else {
		free(slot->device_id);
		offer_done(&slot->offer);
		free(slot->fingerprint);
		free(slot->reason);
	}
	/* (both branches set slot; cppcheck 2.10 thinks the first may not) */
	/* cppcheck-suppress nullPointerRedundantCheck */
	*slot = n;
	return 0;
oom:
	free(n.device_id);
	offer_done(&n.offer);
	free(n.fingerprint);
	free(n.reason);
	return -ENOMEM;
}

int plan_note_attempts(struct plan *p, const struct device_list *devs,
		       const struct plan_attempts *a)
{
	for (size_t i = 0; i < p->n_devices; i++) {
		struct device_plan *dp = &p->devices[i];
		const struct plan_attempt *at = attempt_find(a, dp->device_id);
		const struct xpu_device *d = device_list_find(devs, dp->device_id);
		_cleanup_free_ char *fp = NULL;
		char *reason;

		if (!dp->apply_needed || !at || !d || !offer_equal(&at->offer, &dp->pending))
			continue;
		fp = plan_device_fingerprint(d);
		if (!fp)
			return -ENOMEM;
		if (!streq(fp, at->fingerprint))
			continue; /* the device changed since: worth another try */
		reason = strdup(at->reason);
		if (!reason)
			return -ENOMEM;
		free(dp->pending_reason);
		dp->pending_reason = reason;
		dp->apply_needed = false;
	}
	return 0;
}

void capacity_list_clear(struct capacity_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].resource);
		free(l->items[i].numa);
	}
	free(l->items);
	*l = (struct capacity_list){};
}

static int capacity_cmp(const void *a, const void *b)
{
	return strcmp(((const struct capacity *)a)->resource, ((const struct capacity *)b)->resource);
}

static int numa_cmp(const void *a, const void *b)
{
	int x = ((const struct capacity_numa *)a)->node, y = ((const struct capacity_numa *)b)->node;

	return (x > y) - (x < y);
}

/* The counters of @node within @c, added if new. NULL on OOM. */
static struct capacity_numa *capacity_numa_get(struct capacity *c, int node)
{
	struct capacity_numa *m;

	for (size_t i = 0; i < c->n_numa; i++)
		if (c->numa[i].node == node)
			return &c->numa[i];
	m = realloc(c->numa, (c->n_numa + 1) * sizeof(*m));
	if (!m)
		return NULL;
	c->numa = m;
	m[c->n_numa] = (struct capacity_numa){ .node = node };
	return &m[c->n_numa++];
}

static int capacity_add(struct capacity_list *l, const struct xpu_slice *s, int node,
			bool healthy, bool allocated)
{
	struct capacity *c = NULL;
	struct capacity_numa *n;

	for (size_t j = 0; j < l->n && !c; j++)
		if (streq(l->items[j].resource, s->resource))
			c = &l->items[j];
	if (!c) {
		c = &l->items[l->n];
		c->resource = strdup(s->resource);
		if (!c->resource)
			return -ENOMEM;
		l->n++;
	}
	n = capacity_numa_get(c, node);
	if (!n)
		return -ENOMEM;
	c->total++;
	n->total++;
	c->healthy += healthy;
	n->healthy += healthy;
	c->allocated += allocated;
	n->allocated += allocated;
	c->free += healthy && !allocated;
	n->free += healthy && !allocated;
	return 0;
}

int plan_capacity(const struct device_list *devices, const struct slice_list *slices,
		  const struct ledger *ledger, struct capacity_list *ret)
{
	struct capacity_list l = {};

	l.items = calloc(slices->n ?: 1, sizeof(*l.items));
	if (!l.items)
		return -ENOMEM;
	for (size_t i = 0; i < slices->n; i++) {
		const struct xpu_slice *s = slices->items[i];
		const struct xpu_device *d = device_list_find(devices, s->device_id);

		if (capacity_add(&l, s, d ? d->numa_node : -1, slice_usable(s, d),
				 ledger_find_slice(ledger, s->id)) < 0) {
			capacity_list_clear(&l);
			return -ENOMEM;
		}
	}
	qsort(l.items, l.n, sizeof(*l.items), capacity_cmp);
	for (size_t i = 0; i < l.n; i++)
		qsort(l.items[i].numa, l.items[i].n_numa, sizeof(*l.items[i].numa), numa_cmp);
	*ret = l;
	return 0;
}
