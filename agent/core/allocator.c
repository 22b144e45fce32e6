// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The allocator: which free, healthy slices a request gets. Pure: no I/O, no logging. The order
 * of preference and its exact scoring are documented in docs/allocation.md; keep the two in step.
 *
 * Slices of one resource on one device are interchangeable, so the search is over sets of
 * devices (and how many slices each gives), never over subsets of slices: that keeps it bounded
 * on MIG-split nodes (8 GPUs x 7 slices) and on nodes with 64 and more devices.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rules.h"
#include "shared/strv.h"

/* Up to this many candidate devices every set of them is scored; above, a greedy search. */
#define ALLOC_EXHAUSTIVE_MAX 16

static int fail(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;

	if (!ret_error)
		return r;
	va_start(ap, fmt);
	if (vasprintf(ret_error, fmt, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return r;
}

/* What @a's rules read in its properties about its link to @b. */
static enum link_level reported_level(const struct xpu_device *a, const struct xpu_device *b)
{
	return a->rules && a->rules->link_level ? a->rules->link_level(a, b) : _LINK_UNKNOWN;
}

/* Whether the comma-separated lists @a and @b share an element other than their first. */
static bool bridges_shared_below_root(const char *a, const char *b)
{
	for (const char *p = strchr(a, ','); p; p = strchr(p, ',')) {
		size_t len;

		p++;
		len = strcspn(p, ",");
		for (const char *q = strchr(b, ','); q; q = strchr(q, ',')) {
			q++;
			if (strcspn(q, ",") == len && strncmp(p, q, len) == 0)
				return true;
		}
	}
	return false;
}

static enum link_level link_level(const struct xpu_device *a, const struct xpu_device *b)
{
	const char *ra, *rb, *ba, *bb;
	enum link_level l;

	if (a == b)
		return LINK_SAME_DEVICE;
	l = MIN(reported_level(a, b), reported_level(b, a));
	if (l != _LINK_UNKNOWN)
		return l;
	/* No backend's rules know: what sysfs says about the PCI tree. */
	ba = device_get_property(a, "pci_bridges");
	bb = device_get_property(b, "pci_bridges");
	if (ba && bb && bridges_shared_below_root(ba, bb))
		return LINK_SWITCH;
	ra = device_get_property(a, "pci_root");
	rb = device_get_property(b, "pci_root");
	if (ra && rb && streq(ra, rb))
		return LINK_ROOT;
	if (a->numa_node >= 0 && a->numa_node == b->numa_node)
		return LINK_NUMA;
	return LINK_SYSTEM;
}

/* The slice's device when the slice may be handed out (both healthy), else NULL. */
static const struct xpu_device *healthy_device(const struct device_list *devs,
					       const struct xpu_slice *s)
{
	const struct xpu_device *d = device_list_find(devs, s->device_id);

	return slice_usable(s, d) ? d : NULL;
}

/* A device that has candidate slices. */
struct cand {
	const struct xpu_device *dev;
	const struct xpu_slice **slices; /* free candidate slices, sorted by id */
	unsigned n;
	bool touched; /* some slice of the device is allocated */
};

/*
 * The fabrics that the rules of the devices @c[0..n) name, in messages: distinct, in
 * alphabetical order, '/'-joined ("NVLink/XGMI"); "fabric" when none names one.
 */
static const char *fabric_names(const struct cand *c, size_t n, char *buf, size_t size)
{
	const char *last = NULL;
	size_t len = 0;

	buf[0] = '\0';
	for (;;) {
		const char *next = NULL;

		for (size_t i = 0; i < n; i++) {
			const char *f = c[i].dev->rules ? c[i].dev->rules->fabric : NULL;

			if (f && (!last || strcmp(f, last) > 0) && (!next || strcmp(f, next) < 0))
				next = f;
		}
		if (!next)
			break;
		len += snprintf(buf + len, size - len, "%s%s", last ? "/" : "", next);
		if (len >= size)
			break; /* truncated: what fits */
		last = next;
	}
	return buf[0] ? buf : "fabric";
}

struct search {
	struct cand *c; /* sorted by their first slice id */
	size_t n;
	unsigned char *level; /* n x n link levels */
	unsigned count;
	bool numa_local, connected;
};

static void search_done(struct search *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->c[i].slices);
	free(s->c);
	free(s->level);
	*s = (struct search){};
}

/* Which slices may be handed out besides being free and healthy. */
struct filter {
	const char *resource;	       /* NULL: any */
	const struct xpu_device *only; /* NULL: any device */
	const struct fit_request *shape;
};

static bool slice_qualifies(const struct xpu_slice *s, const struct xpu_device *d,
			    const struct fit_request *f)
{
	if (!f)
		return true;
	if (f->memory_bytes > 0 && s->memory_bytes < f->memory_bytes)
		return false; /* an unknown size (0) never qualifies when a size is asked */
	if (f->compute > 0 && s->compute_fraction < f->compute)
		return false;
	return !f->kind || xpu_kind_from_string(f->kind) == d->kind;
}

static bool slice_is_candidate(const struct device_list *devs, const struct ledger *ledger,
			       const struct filter *f, const struct xpu_slice *s)
{
	const struct xpu_device *d;

	if ((f->resource && !streq(s->resource, f->resource)) ||
	    (f->only && !streq(s->device_id, f->only->id)) || ledger_find_slice(ledger, s->id))
		return false;
	d = healthy_device(devs, s);
	return d && slice_qualifies(s, d, f->shape);
}

static int slice_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct xpu_slice *const *)a)->id,
		      (*(const struct xpu_slice *const *)b)->id);
}

static int cand_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cand *)a)->slices[0]->id,
		      ((const struct cand *)b)->slices[0]->id);
}

/* Groups the candidate slices by device and computes the link levels. 0 or -ENOMEM. */
static int search_init(struct search *s, const struct device_list *devs,
		       const struct slice_list *slices, const struct ledger *ledger,
		       const struct filter *f)
{
	*s = (struct search){};
	s->c = calloc(slices->n ?: 1, sizeof(*s->c));
	if (!s->c)
		return -ENOMEM;
	for (size_t i = 0; i < slices->n; i++) {
		const struct xpu_slice *sl = slices->items[i];
		struct cand *c = NULL;

		if (!slice_is_candidate(devs, ledger, f, sl))
			continue;
		for (size_t j = 0; j < s->n && !c; j++)
			if (streq(s->c[j].dev->id, sl->device_id))
				c = &s->c[j];
		if (!c) {
			c = &s->c[s->n++];
			c->dev = device_list_find(devs, sl->device_id);
			c->touched = ledger_device_busy(ledger, slices, c->dev->id);
			c->slices = calloc(slices->n, sizeof(*c->slices));
			if (!c->slices) {
				search_done(s);
				return -ENOMEM;
			}
		}
		c->slices[c->n++] = sl;
	}
	for (size_t i = 0; i < s->n; i++)
		qsort(s->c[i].slices, s->c[i].n, sizeof(*s->c[i].slices), slice_ptr_cmp);
	if (s->n > 1)
		qsort(s->c, s->n, sizeof(*s->c), cand_cmp);
	s->level = malloc(s->n * s->n ?: 1);
	if (!s->level) {
		search_done(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < s->n; j++)
			s->level[i * s->n + j] = link_level(s->c[i].dev, s->c[j].dev);
	return 0;
}

static unsigned search_free(const struct search *s)
{
	unsigned n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->c[i].n;
	return n;
}

/* A set of candidate devices, as indexes into search.c in ascending order, and its score. */
struct set {
	size_t *idx;
	size_t n;
	unsigned numa_nodes; /* distinct NUMA nodes; unknown (-1) is one more */
	unsigned worst;	     /* worst link level between two of its devices; 0 for one device */
	unsigned sum;	     /* link levels summed over its pairs of devices */
	unsigned untouched;  /* devices with no slice allocated yet */
	unsigned leftover;   /* free slices of the resource the set's devices keep */
};

static unsigned numa_nodes(const struct search *s, const size_t *idx, size_t n)
{
	unsigned k = 0;

	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = s->c[idx[j]].dev->numa_node == s->c[idx[i]].dev->numa_node;
		k += !seen;
	}
	return k;
}

/* Scores @t (idx and n set). False when the set cannot serve the request. */
static bool set_score(const struct search *s, struct set *t)
{
	unsigned free_slices = 0;

	if (t->n == 0 || t->n > s->count)
		return false;
	for (size_t i = 0; i < t->n; i++)
		free_slices += s->c[t->idx[i]].n;
	if (free_slices < s->count)
		return false;
	t->worst = t->sum = t->untouched = 0;
	for (size_t i = 0; i < t->n; i++) {
		t->untouched += !s->c[t->idx[i]].touched;
		for (size_t j = i + 1; j < t->n; j++) {
			unsigned l = s->level[t->idx[i] * s->n + t->idx[j]];

			t->worst = MAX(t->worst, l);
			t->sum += l;
		}
	}
	t->leftover = free_slices - s->count;
	t->numa_nodes = numa_nodes(s, t->idx, t->n);
	if ((s->numa_local && t->numa_nodes > 1) || (s->connected && t->worst > LINK_FABRIC))
		return false;
	return true;
}

#define CMP(a, b) ((a) < (b) ? -1 : (a) > (b) ? 1 : 0)

/* < 0 when @a is preferred. Both are scored, idx ascending. */
static int set_cmp(const struct set *a, const struct set *b)
{
	int r;

	if ((r = CMP(a->numa_nodes, b->numa_nodes)) || (r = CMP(a->worst, b->worst)) ||
	    (r = CMP(a->sum, b->sum)) || (r = CMP(a->untouched, b->untouched)) ||
	    (r = CMP(a->leftover, b->leftover)))
		return r;
	/* Candidates are in slice id order: the lower indexes hold the lower slice ids. */
	for (size_t i = 0; i < MIN(a->n, b->n); i++)
		if ((r = CMP(a->idx[i], b->idx[i])))
			return r;
	return CMP(a->n, b->n);
}

static int size_cmp(const void *a, const void *b)
{
	return CMP(*(const size_t *)a, *(const size_t *)b);
}

/* Keeps @t in @best when it is feasible and preferred. */
static void consider(const struct search *s, struct set *t, struct set *best)
{
	size_t *keep;

	qsort(t->idx, t->n, sizeof(*t->idx), size_cmp);
	if (!set_score(s, t) || (best->n > 0 && set_cmp(t, best) >= 0))
		return;
	keep = best->idx;
	memcpy(keep, t->idx, t->n * sizeof(*keep));
	*best = *t;
	best->idx = keep;
}

static bool key_less(const unsigned *a, const unsigned *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i];
	return false;
}

/*
 * The exact search, as branch and bound over the sets in ascending index order. Every measure
 * of a set (NUMA nodes, worst link, sum of links, untouched devices) only grows as devices join
 * it, so a partial set whose least possible score is already worse than the best set found is
 * not extended; nor is a set that holds enough slices (a device more cannot make it better).
 * The greedy search's answer is the first best, so most branches end at their first device.
 */
struct bnb {
	const struct search *s;
	struct set *best;
	unsigned *suffix;   /* suffix[j]: free slices of the devices j and above */
	unsigned *scratch;  /* two rows of s->n */
	unsigned min_level; /* the best link between two different candidates */
};

static void sort_desc(unsigned *v, size_t n)
{
	for (size_t i = 1; i < n; i++) /* insertion sort: a handful of devices */
		for (size_t j = i; j > 0 && v[j] > v[j - 1]; j--) {
			unsigned x = v[j];

			v[j] = v[j - 1];
			v[j - 1] = x;
		}
}

/* Whether no set that extends @t (not yet enough slices) with devices from @next on can beat
 * the best one. @t's measures are those of the partial set. */
static bool bnb_hopeless(const struct bnb *b, const struct set *t, size_t next, unsigned have)
{
	const struct search *s = b->s;
	const struct set *best = b->best;
	unsigned *free_n = b->scratch, *inc = b->scratch + s->n;
	unsigned need = s->count - have, m = 0, got = 0, sum;
	size_t n_rem = s->n - next;
	int c;

	if (have + b->suffix[next] < s->count)
		return true;
	if (best->n == 0)
		return false;
	/* the fewest devices still to add, and the least each adds to the sum of links */
	for (size_t j = next; j < s->n; j++) {
		free_n[j - next] = s->c[j].n;
		inc[j - next] = 0;
		for (size_t i = 0; i < t->n; i++)
			inc[j - next] += s->level[t->idx[i] * s->n + j];
	}
	sort_desc(free_n, n_rem);
	while (got < need)
		got += free_n[m++];
	sort_desc(inc, n_rem);
	sum = t->sum + m * (m - 1) / 2 * b->min_level;
	for (unsigned i = 0; i < m; i++)
		sum += inc[n_rem - 1 - i];
	if ((c = CMP(t->numa_nodes, best->numa_nodes)) || (c = CMP(t->worst, best->worst)) ||
	    (c = CMP(sum, best->sum)) || (c = CMP(t->untouched, best->untouched)))
		return c > 0;
	if (best->leftover > 0)
		return false; /* it may leave fewer slices behind */
	/* equal at best: the lower slice ids win, and those are decided by the prefix */
	for (size_t i = 0; i < MIN(t->n, best->n); i++)
		if ((c = CMP(t->idx[i], best->idx[i])))
			return c > 0;
	return t->n >= best->n;
}

static void bnb_extend(struct bnb *b, struct set *t, size_t next, unsigned have)
{
	const struct search *s = b->s;
	struct set saved = *t;

	for (size_t j = next; j < s->n; j++) {
		bool new_node = true;

		*t = saved;
		for (size_t i = 0; i < t->n; i++) {
			unsigned l = s->level[t->idx[i] * s->n + j];

			t->worst = MAX(t->worst, l);
			t->sum += l;
			new_node = new_node && s->c[t->idx[i]].dev->numa_node != s->c[j].dev->numa_node;
		}
		t->numa_nodes += new_node;
		t->untouched += !s->c[j].touched;
		t->idx[t->n++] = j;
		if ((s->numa_local && t->numa_nodes > 1) || (s->connected && t->worst > LINK_FABRIC))
			continue;
		if (have + s->c[j].n >= s->count)
			consider(s, t, b->best);
		else if (!bnb_hopeless(b, t, j + 1, have + s->c[j].n))
			bnb_extend(b, t, j + 1, have + s->c[j].n);
	}
	*t = saved;
}

static int search_exact(const struct search *s, struct set *t, struct set *best)
{
	_cleanup_free_ unsigned *suffix = calloc(s->n + 1, sizeof(*suffix));
	_cleanup_free_ unsigned *scratch = calloc(2 * s->n + 1, sizeof(*scratch));
	struct bnb b = { .s = s, .best = best, .suffix = suffix, .scratch = scratch,
			 .min_level = _LINK_UNKNOWN };

	if (!suffix || !scratch)
		return -ENOMEM;
	for (size_t j = s->n; j > 0; j--)
		suffix[j - 1] = suffix[j] + s->c[j - 1].n;
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = i + 1; j < s->n; j++)
			b.min_level = MIN(b.min_level, s->level[i * s->n + j]);
	t->n = 0;
	t->numa_nodes = t->worst = t->sum = t->untouched = 0;
	if (!bnb_hopeless(&b, t, 0, 0))
		bnb_extend(&b, t, 0, 0);
	return 0;
}

/*
 * Greedy, for many devices: from each device as a seed, add the device that keeps the set best
 * (fewest NUMA nodes, then the best worst link, the lowest sum of links, an already touched
 * device, the one that covers most of what is still missing, the lowest index) until the set
 * holds enough slices. The best of the seeds' sets wins, scored as the exhaustive search would.
 */
static void search_greedy(const struct search *s, struct set *t, struct set *best, bool *in,
			  unsigned *acc_max, unsigned *acc_sum)
{
	for (size_t seed = 0; seed < s->n; seed++) {
		unsigned have = s->c[seed].n, worst = 0, sum = 0;

		memset(in, 0, s->n * sizeof(*in));
		in[seed] = true;
		t->idx[0] = seed;
		t->n = 1;
		for (size_t i = 0; i < s->n; i++)
			acc_max[i] = acc_sum[i] = s->level[i * s->n + seed];
		while (have < s->count) {
			size_t pick = SIZE_MAX;
			unsigned pick_key[6] = {};

			for (size_t i = 0; i < s->n; i++) {
				const struct cand *c = &s->c[i];
				int numa = c->dev->numa_node;
				bool new_node = true;
				unsigned key[6], missing = s->count - have;

				if (in[i])
					continue;
				for (size_t j = 0; j < t->n && new_node; j++)
					new_node = s->c[t->idx[j]].dev->numa_node != numa;
				if ((s->numa_local && new_node) ||
				    (s->connected && acc_max[i] > LINK_FABRIC))
					continue;
				key[0] = new_node;
				key[1] = MAX(worst, acc_max[i]);
				key[2] = sum + acc_sum[i];
				key[3] = !c->touched;
				key[4] = missing - MIN(c->n, missing);
				key[5] = c->n > missing ? c->n - missing : 0;
				if (pick == SIZE_MAX || key_less(key, pick_key, ELEMENTSOF(key))) {
					pick = i;
					memcpy(pick_key, key, sizeof(key));
				}
			}
			if (pick == SIZE_MAX)
				break;
			in[pick] = true;
			t->idx[t->n++] = pick;
			have += s->c[pick].n;
			worst = pick_key[1];
			sum = pick_key[2];
			for (size_t i = 0; i < s->n; i++) {
				acc_max[i] = MAX(acc_max[i], s->level[i * s->n + pick]);
				acc_sum[i] += s->level[i * s->n + pick];
			}
		}
		if (have >= s->count)
			consider(s, t, best);
	}
}

static int dist_cmp(const struct search *s, size_t a, size_t b)
{
	const struct cand *x = &s->c[a], *y = &s->c[b];
	int r;

	if ((r = CMP(!x->touched, !y->touched)) || (r = CMP(x->n, y->n)))
		return r;
	return CMP(a, b);
}

/*
 * The slices of @best: each device gives one, then what is still missing is taken device by
 * device, touched devices first, then those with the fewest free slices (emptying them), then
 * in slice id order. Devices are listed in that order, each device's slices by id.
 */
static int set_slices(const struct search *s, struct set *best, char ***ret)
{
	_cleanup_free_ unsigned *take = calloc(best->n, sizeof(*take));
	char **l = NULL;
	unsigned missing = s->count - (unsigned)best->n;

	if (!take)
		return -ENOMEM;
	for (size_t i = 1; i < best->n; i++) /* insertion sort: a handful of devices */
		for (size_t j = i; j > 0 && dist_cmp(s, best->idx[j], best->idx[j - 1]) < 0; j--) {
			size_t x = best->idx[j];

			best->idx[j] = best->idx[j - 1];
			best->idx[j - 1] = x;
		}
	for (size_t i = 0; i < best->n; i++) {
		unsigned more = MIN(missing, s->c[best->idx[i]].n - 1);

		take[i] = 1 + more;
		missing -= more;
	}
	for (size_t i = 0; i < best->n; i++)
		for (unsigned k = 0; k < take[i]; k++)
			if (strv_extend(&l, s->c[best->idx[i]].slices[k]->id) < 0) {
				strv_free(l);
				return -ENOMEM;
			}
	*ret = l;
	return 0;
}

/* The best set for the request. 1 with *ret set, 0 when no set serves it, -ENOMEM. */
static int search_run(const struct search *s, char ***ret)
{
	_cleanup_free_ size_t *idx = calloc(s->n ?: 1, sizeof(*idx));
	_cleanup_free_ size_t *best_idx = calloc(s->n ?: 1, sizeof(*best_idx));
	_cleanup_free_ bool *in = calloc(s->n ?: 1, sizeof(*in));
	_cleanup_free_ unsigned *acc_max = calloc(s->n ?: 1, sizeof(*acc_max));
	_cleanup_free_ unsigned *acc_sum = calloc(s->n ?: 1, sizeof(*acc_sum));
	struct set t = { .idx = idx }, best = { .idx = best_idx };
	int r;

	if (!idx || !best_idx || !in || !acc_max || !acc_sum)
		return -ENOMEM;
	search_greedy(s, &t, &best, in, acc_max, acc_sum);
	if (s->n <= ALLOC_EXHAUSTIVE_MAX) {
		r = search_exact(s, &t, &best);
		if (r < 0)
			return r;
	}
	if (best.n == 0)
		return 0;
	r = set_slices(s, &best, ret);
	return r < 0 ? r : 1;
}

static const struct xpu_slice *slice_find(const struct slice_list *slices, const char *id)
{
	for (size_t i = 0; i < slices->n; i++)
		if (streq(slices->items[i]->id, id))
			return slices->items[i];
	return NULL;
}

/* Explicit slices: each must exist, be free and healthy, and satisfy every constraint. */
static int choose_explicit(const struct device_list *devs, const struct slice_list *slices,
			   const struct ledger *ledger, const struct alloc_request *req,
			   const struct xpu_device *only, char ***ret, char **ret_error)
{
	size_t n = strv_length(req->slices);
	const char *resource = req->resource;
	char **l = NULL;

	if (n == 0)
		return fail(ret_error, -EINVAL, "No slices given");
	if (req->count != 0 && req->count != n)
		return fail(ret_error, -EINVAL, "Count %u conflicts with the %zu slices given",
			    req->count, n);
	for (size_t i = 0; i < n; i++) {
		const struct xpu_slice *s = slice_find(slices, req->slices[i]);
		const struct xpu_device *d;
		const struct allocation *a;

		if (!s)
			return fail(ret_error, -ENOENT, "No slice '%s'", req->slices[i]);
		for (size_t j = 0; j < i; j++)
			if (streq(req->slices[j], s->id))
				return fail(ret_error, -EINVAL, "Slice %s is given twice", s->id);
		a = ledger_find_slice(ledger, s->id);
		if (a)
			return fail(ret_error, -EBUSY, "Slice %s is allocated already (%s)", s->id,
				    a->id);
		d = device_list_find(devs, s->device_id);
		if (!d || d->health.state != XPU_HEALTH_HEALTHY)
			return fail(ret_error, -ENOSPC, "Slice %s is on an unhealthy device %s: %s",
				    s->id, s->device_id,
				    d && d->health.reason ? d->health.reason : "gone");
		if (!slice_usable(s, d))
			return fail(ret_error, -ENOSPC, "Slice %s is unhealthy: %s", s->id,
				    s->health.reason ?: "no reason given");
		if (resource && !streq(resource, s->resource))
			return fail(ret_error, -EINVAL,
				    "Slice %s is a %s, conflicting with the request for %s", s->id,
				    s->resource, resource);
		resource = s->resource;
		if (only && !streq(only->id, d->id))
			return fail(ret_error, -EINVAL,
				    "Slice %s is on device %s, conflicting with device %s", s->id,
				    d->id, only->id);
		for (size_t j = 0; j < i; j++) {
			const struct xpu_slice *o = slice_find(slices, req->slices[j]);
			const struct xpu_device *e = device_list_find(devs, o->device_id);

			if (req->numa_local && e->numa_node != d->numa_node)
				return fail(ret_error, -EINVAL,
					    "Slices %s and %s are on different NUMA nodes, "
					    "conflicting with numa_local",
					    req->slices[j], s->id);
			if (req->connected && link_level(e, d) > LINK_FABRIC) {
				struct cand pair[] = { { .dev = e }, { .dev = d } };
				char buf[64];

				return fail(ret_error, -EINVAL,
					    "Devices %s and %s are not %s-connected, "
					    "conflicting with connected",
					    e->id, d->id, fabric_names(pair, 2, buf, sizeof(buf)));
			}
		}
	}
	if (strv_copy(req->slices, &l) < 0)
		return fail(ret_error, -ENOMEM, "Out of memory");
	*ret = l;
	return 0;
}

static unsigned count_slices(const struct slice_list *slices, const char *resource,
			     const struct xpu_device *only)
{
	unsigned n = 0;

	for (size_t i = 0; i < slices->n; i++)
		n += streq(slices->items[i]->resource, resource) &&
		     (!only || streq(slices->items[i]->device_id, only->id));
	return n;
}

static int choose(const struct device_list *devs, const struct slice_list *slices,
		  const struct ledger *ledger, const struct alloc_request *req,
		  const struct fit_request *shape, char ***ret, char **ret_error)
{
	const struct xpu_device *only = NULL;
	struct filter f = { .resource = req->resource, .shape = shape };
	_cleanup_(search_done) struct search s = {};
	unsigned total, n_free;
	const char *where;
	char buf[64];
	int r;

	if (req->device) {
		only = device_list_lookup(devs, req->device);
		if (!only)
			return fail(ret_error, -ENOENT, "No device '%s'", req->device);
	}
	if (req->slices)
		return choose_explicit(devs, slices, ledger, req, only, ret, ret_error);
	if (isempty(req->resource))
		return fail(ret_error, -EINVAL, "A resource or explicit slices are required");
	if (req->count == 0)
		return fail(ret_error, -EINVAL, "Count must be at least 1");
	if (count_slices(slices, req->resource, NULL) == 0)
		return fail(ret_error, -ENOENT, "No resource '%s' on this node", req->resource);
	total = count_slices(slices, req->resource, only);
	if (only && total == 0)
		return fail(ret_error, -EINVAL,
			    "Device %s offers no %s, conflicting with the request", only->id,
			    req->resource);
	f.only = only;
	r = search_init(&s, devs, slices, ledger, &f);
	if (r < 0)
		return fail(ret_error, r, "Out of memory");
	n_free = search_free(&s);
	where = only ? " on device " : "";
	if (req->count > total)
		return fail(ret_error, -ENOSPC, "%u %s requested, but only %u exist%s%s (%u free)",
			    req->count, req->resource, total, where, only ? only->id : "", n_free);
	if (req->count > n_free)
		return fail(ret_error, -ENOSPC,
			    "%u %s requested, but only %u of %u are free and healthy%s%s",
			    req->count, req->resource, n_free, total, where, only ? only->id : "");
	s.count = req->count;
	s.numa_local = req->numa_local;
	s.connected = req->connected;
	r = search_run(&s, ret);
	if (r < 0)
		return fail(ret_error, r, "Out of memory");
	if (r == 0 && req->numa_local && !req->connected)
		return fail(ret_error, -ENOSPC, "No %u free %s on one NUMA node (%u free in all)",
			    req->count, req->resource, n_free);
	if (r == 0)
		return fail(ret_error, -ENOSPC,
			    "No %u free %s %swith all devices %s-connected (%u free in all)",
			    req->count, req->resource, req->numa_local ? "on one NUMA node " : "",
			    fabric_names(s.c, s.n, buf, sizeof(buf)), n_free);
	return 0;
}

int alloc_choose(const struct device_list *devs, const struct slice_list *slices,
		 const struct ledger *ledger, const struct alloc_request *req, char ***ret,
		 char **ret_error)
{
	return choose(devs, slices, ledger, req, NULL, ret, ret_error);
}

/* Per resource: how many of its free healthy slices fit the shape, and the least waste. */
struct fit_tally {
	const char *resource;
	unsigned n;
	unsigned fits;	/* workloads of the shape: n / count, or as placed with the topology */
	uint64_t waste; /* the fewest bytes one qualifying slice has beyond what is asked */
};

static bool fit_better(const struct fit_tally *a, const struct fit_tally *b)
{
	if (a->fits != b->fits)
		return a->fits > b->fits;
	if (a->waste != b->waste)
		return a->waste < b->waste;
	return strcmp(a->resource, b->resource) < 0;
}

/*
 * How many workloads of @req, each NUMA-local or connected, the allocator places on the free
 * slices of @resource one after the other, each on what the ones before left: the allocator's
 * own choices, so that a node fragmented across NUMA nodes or fabrics counts as it will when the
 * workloads come. At most @n_free / count searches. 0 or -ENOMEM.
 */
static int fit_placed(const struct device_list *devs, const struct slice_list *slices,
		      const struct ledger *ledger, const struct fit_request *req,
		      const char *resource, unsigned n_free, unsigned *ret)
{
	const struct alloc_request ar = { .resource = (char *)resource,
					  .count = req->count,
					  .numa_local = req->numa_local,
					  .connected = req->connected };
	size_t held = ledger ? ledger->n : 0, most = n_free / req->count;
	_cleanup_free_ struct allocation **items = calloc(held + most + 1, sizeof(*items));
	_cleanup_free_ struct allocation *placed = calloc(most + 1, sizeof(*placed));
	struct ledger l = { .items = items, .n = held };
	unsigned n = 0;
	int r = 0;

	if (!items || !placed)
		return -ENOMEM;
	for (size_t i = 0; i < held; i++)
		items[i] = ledger->items[i];
	/* the ledger borrows the held allocations and the placed ones: it is never cleared */
	while (n < most) {
		r = choose(devs, slices, &l, &ar, req, &placed[n].slices, NULL);
		if (r < 0)
			break;
		l.items[l.n++] = &placed[n++];
	}
	for (unsigned i = 0; i < n; i++)
		strv_free(placed[i].slices);
	if (r == -ENOMEM)
		return r;
	*ret = n;
	return 0;
}

int alloc_fit(const struct device_list *devs, const struct slice_list *slices,
	      const struct ledger *ledger, const struct fit_request *req, struct fit_result *ret,
	      char **ret_error)
{
	_cleanup_free_ struct fit_tally *t = NULL;
	struct filter f = { .resource = req->resource, .shape = req };
	struct fit_result res = {};
	size_t n = 0, best = SIZE_MAX;
	int r;

	if (req->count == 0)
		return fail(ret_error, -EINVAL, "Slices per workload must be at least 1");
	if (isnan(req->compute) || req->compute < 0 || req->compute > 1)
		return fail(ret_error, -EINVAL, "Compute fraction %g is outside (0, 1]",
			    req->compute);
	if (req->kind && xpu_kind_from_string(req->kind) < 0)
		return fail(ret_error, -EINVAL, "Unknown kind '%s' (gpu, accel or fpga)",
			    req->kind);
	t = calloc(slices->n ?: 1, sizeof(*t));
	if (!t)
		return fail(ret_error, -ENOMEM, "Out of memory");
	for (size_t i = 0; i < slices->n; i++) {
		const struct xpu_slice *s = slices->items[i];
		struct fit_tally *x = NULL;
		uint64_t waste = s->memory_bytes - req->memory_bytes;

		if (!slice_is_candidate(devs, ledger, &f, s))
			continue;
		for (size_t j = 0; j < n && !x; j++)
			if (streq(t[j].resource, s->resource))
				x = &t[j];
		if (!x) {
			x = &t[n++];
			*x = (struct fit_tally){ .resource = s->resource, .waste = waste };
		}
		x->n++;
		x->waste = MIN(x->waste, waste);
	}
	for (size_t i = 0; i < n; i++) {
		t[i].fits = t[i].n / req->count;
		if (t[i].fits > 0 && req->count > 1 && (req->numa_local || req->connected)) {
			r = fit_placed(devs, slices, ledger, req, t[i].resource, t[i].n,
				       &t[i].fits);
			if (r < 0)
				return fail(ret_error, r, "Out of memory");
		}
		if (t[i].fits > 0 && (best == SIZE_MAX || fit_better(&t[i], &t[best])))
			best = i;
	}
	if (best != SIZE_MAX) {
		struct alloc_request ar = { .resource = (char *)t[best].resource,
					    .count = req->count,
					    .numa_local = req->numa_local,
					    .connected = req->connected };

		res.fits = t[best].fits;
		res.resource = strdup(t[best].resource);
		if (!res.resource)
			return fail(ret_error, -ENOMEM, "Out of memory");
		r = choose(devs, slices, ledger, &ar, req, &res.slices, ret_error);
		if (r < 0) { /* only -ENOMEM: the slices were counted above */
			fit_result_done(&res);
			return r;
		}
	}
	*ret = res;
	return 0;
}
