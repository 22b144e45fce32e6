// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The metrics page: every family of docs/metrics.md, rendered from the inventory in the text
 * exposition format 0.0.4 or in OpenMetrics 1.0. Pure: what the page says comes from struct
 * metrics_input alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/metrics.h"
#include "backends/samples.h"
#include "core/alloc.h"
#include "core/device.h"
#include "core/health.h"
#include "core/plan.h"
#include "shared/macro.h"

struct page {
	char *data;
	size_t len, alloc;
	bool oom;
	enum metrics_format format;
};

static bool page_reserve(struct page *p, size_t extra)
{
	size_t want;
	char *n;

	if (p->oom)
		return false;
	if (p->len + extra + 1 <= p->alloc)
		return true;
	want = p->alloc ? p->alloc : 4096;
	while (want < p->len + extra + 1)
		want *= 2;
	n = realloc(p->data, want);
	if (!n) {
		p->oom = true;
		return false;
	}
	p->data = n;
	p->alloc = want;
	return true;
}

static void page_put(struct page *p, const char *s, size_t n)
{
	if (!page_reserve(p, n))
		return;
	memcpy(p->data + p->len, s, n);
	p->len += n;
	p->data[p->len] = '\0';
}

static void page_puts(struct page *p, const char *s)
{
	page_put(p, s, strlen(s));
}

_printf_(2, 3) static void page_printf(struct page *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!page_reserve(p, 64))
		return;
	va_start(ap, fmt);
	n = vsnprintf(p->data + p->len, p->alloc - p->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		p->oom = true;
		return;
	}
	if ((size_t)n >= p->alloc - p->len) {
		if (!page_reserve(p, (size_t)n))
			return;
		va_start(ap, fmt);
		(void)vsnprintf(p->data + p->len, p->alloc - p->len, fmt, ap);
		va_end(ap);
	}
	p->len += (size_t)n;
}

/* The length of the valid UTF-8 sequence at @s (RFC 3629), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s)
{
	size_t n;
	unsigned c = s[0];
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and beyond U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static void page_label_value(struct page *p, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		size_t run = 0, n;

		/* the longest run that needs no escaping, copied at once */
		while (u[run] && u[run] < 0x80 && u[run] != '\\' && u[run] != '"' && u[run] != '\n')
			run++;
		page_put(p, (const char *)u, run);
		u += run;
		if (!*u)
			break;
		if (*u == '\\')
			page_put(p, "\\\\", 2), u++;
		else if (*u == '"')
			page_put(p, "\\\"", 2), u++;
		else if (*u == '\n')
			page_put(p, "\\n", 2), u++;
		else if ((n = utf8_sequence(u)) > 0)
			page_put(p, (const char *)u, n), u += n;
		else
			page_put(p, "\xef\xbf\xbd", 3), u++; /* U+FFFD */
	}
}

char *metrics_escape_label(const char *s)
{
	struct page p = {};

	page_label_value(&p, s);
	page_put(&p, "", 0);
	if (p.oom) {
		free(p.data);
		return NULL;
	}
	return p.data ?: strdup("");
}

/* {k="v",...} from NULL-terminated pairs; a pair whose value is NULL is left out. */
static void page_labels(struct page *p, const char *const *kv)
{
	bool first = true;

	for (size_t i = 0; kv[i]; i += 2) {
		if (!kv[i + 1])
			continue;
		page_puts(p, first ? "{" : ",");
		page_puts(p, kv[i]);
		page_put(p, "=\"", 2);
		page_label_value(p, kv[i + 1]);
		page_put(p, "\"", 1);
		first = false;
	}
	if (!first)
		page_put(p, "}", 1);
}

enum family_type {
	FAMILY_GAUGE,
	FAMILY_INFO, /* a gauge of 1 named <family>_info; OpenMetrics' info type */
	FAMILY_COUNTER, /* named <family>_total, the samples' name; OpenMetrics' family drops it */
};

struct family {
	const char *name; /* with the _info suffix for FAMILY_INFO */
	enum family_type type;
	const char *unit; /* the base unit the name ends with, or NULL */
	const char *help;
};

static void page_family(struct page *p, const struct family *f)
{
	const char *type = f->type == FAMILY_COUNTER ? "counter" : "gauge";

	if (p->format == METRICS_OPENMETRICS) {
		if (f->type == FAMILY_INFO || f->type == FAMILY_COUNTER) {
			const char *suffix = f->type == FAMILY_INFO ? "_info" : "_total";
			int n = (int)(strlen(f->name) - strlen(suffix));

			page_printf(p, "# TYPE %.*s %s\n", n, f->name,
				    f->type == FAMILY_INFO ? "info" : type);
			page_printf(p, "# HELP %.*s %s\n", n, f->name, f->help);
			return;
		}
		page_printf(p, "# TYPE %s gauge\n", f->name);
		if (f->unit)
			page_printf(p, "# UNIT %s %s\n", f->name, f->unit);
		page_printf(p, "# HELP %s %s\n", f->name, f->help);
		return;
	}
	page_printf(p, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type);
}

static void page_sample_u64(struct page *p, const struct family *f, const char *const *kv,
			    uint64_t v)
{
	page_puts(p, f->name);
	page_labels(p, kv);
	page_printf(p, " %" PRIu64 "\n", v);
}

static void page_sample_double(struct page *p, const struct family *f, const char *const *kv,
			       double v)
{
	page_puts(p, f->name);
	page_labels(p, kv);
	if (isnan(v))
		page_puts(p, " NaN\n");
	else if (isinf(v))
		page_puts(p, v > 0 ? " +Inf\n" : " -Inf\n");
	else
		page_printf(p, " %.15g\n", v);
}

/* A property that holds a finite number, or false. */
static bool property_number(const struct xpu_device *d, const char *key, double *ret)
{
	const char *s = device_get_property(d, key);
	char *end = NULL;
	double v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || !end || *end || !isfinite(v))
		return false;
	*ret = v;
	return true;
}

enum family_id {
	F_BUILD,
	F_INFO,
	F_HEALTH,
	F_MEM_TOTAL,
	F_MEM_USED,
	F_UTIL,
	F_MEM_UTIL,
	F_RAS,
	F_TEMP,
	F_POWER,
	F_CORDONED,
	F_REPARTITION,
	F_SLICES,
	F_SLICES_HEALTHY,
	F_SLICES_ALLOCATED,
	F_ALLOCATED_RATIO,
	F_SHAPE_FITS,
	F_SLICE_HEALTHY,
	F_SLICE_ALLOCATED,
	F_ALLOCATIONS,
	F_ALLOCATION_AGE,
	F_BACKEND_AVAILABLE,
	F_BACKEND_UP,
	F_BACKEND_AGE,
	F_SCRAPE,
	_F_MAX,
};

static const struct family families[_F_MAX] = {
    [F_BUILD] = {"xpu_build_info", FAMILY_INFO, NULL, "The version of xpud serving this page."},
    [F_INFO] = {"xpu_device_info", FAMILY_INFO, NULL,
		"One accelerator: its identity, model and place on the host, always 1."},
    [F_HEALTH] =
	{"xpu_device_health", FAMILY_GAUGE, NULL,
	 "1 when the device may be given to workloads, 0 when it is unhealthy; phase is xpud's "
	 "health state machine (healthy, suspect, unhealthy, probation), reason why it left "
	 "healthy."},
    [F_MEM_TOTAL] = {"xpu_device_memory_total_bytes", FAMILY_GAUGE, "bytes",
		     "The device's memory, where known."},
    [F_MEM_USED] = {"xpu_device_memory_used_bytes", FAMILY_GAUGE, "bytes",
		    "The device's memory in use, where its backend reports it."},
    [F_UTIL] =
	{"xpu_device_utilization_ratio", FAMILY_GAUGE, "ratio",
	 "The device's busy time over its backend's last sampling period, 0 to 1, where reported."},
    [F_MEM_UTIL] = {"xpu_device_memory_utilization_ratio", FAMILY_GAUGE, "ratio",
		    "The share of its backend's last sampling period in which the device's memory "
		    "was read or written, 0 to 1, where reported."},
    [F_RAS] = {"xpu_device_ras_errors_total", FAMILY_COUNTER, NULL,
	       "Hardware errors the device corrected or could not correct since its driver "
	       "loaded, per block (a RAS block; memory for ECC counts), where its backend reports "
	       "them."},
    [F_TEMP] = {"xpu_device_temperature_celsius", FAMILY_GAUGE, "celsius",
		"The device's temperature, where its backend reports it."},
    [F_POWER] = {"xpu_device_power_watts", FAMILY_GAUGE, "watts",
		 "The device's power draw, where its backend reports it."},
    [F_CORDONED] = {"xpu_device_cordoned", FAMILY_GAUGE, NULL,
		    "1 when an operator withdrew the device (xpuctl cordon): its free slices are "
		    "not offered."},
    [F_REPARTITION] =
	{"xpu_repartition_in_progress", FAMILY_GAUGE, NULL,
	 "1 while the device's partitions are being changed (phase: draining, applying, "
	 "rolling-back)."},
    [F_SLICES] = {"xpu_slices", FAMILY_GAUGE, NULL,
		  "Slices offered, per resource and NUMA node of their devices."},
    [F_SLICES_HEALTHY] =
	{"xpu_slices_healthy", FAMILY_GAUGE, NULL,
	 "Slices whose device (and partition) is healthy, per resource and NUMA node."},
    [F_SLICES_ALLOCATED] = {"xpu_slices_allocated", FAMILY_GAUGE, NULL,
			    "Slices held by allocations, per resource and NUMA node."},
    [F_ALLOCATED_RATIO] =
	{"xpu_resource_allocated_ratio", FAMILY_GAUGE, "ratio",
	 "Slices held by allocations over healthy slices, per resource (0 when none is healthy; "
	 "above 1 when allocations hold slices of unhealthy devices)."},
    [F_SHAPE_FITS] =
	{"xpu_shape_fits", FAMILY_GAUGE, NULL,
	 "How many more workloads of each configured shape fit on the node now, topology and "
	 "fragmentation included (the fit query)."},
    [F_SLICE_HEALTHY] = {"xpu_slice_healthy", FAMILY_GAUGE, NULL,
			 "1 when the slice may be given to workloads."},
    [F_SLICE_ALLOCATED] = {"xpu_slice_allocated", FAMILY_GAUGE, NULL,
			   "1 when an allocation holds the slice."},
    [F_ALLOCATIONS] = {"xpu_allocations", FAMILY_GAUGE, NULL,
		       "Allocations (grants) held, per resource."},
    [F_ALLOCATION_AGE] =
	{"xpu_allocation_age_seconds", FAMILY_GAUGE, "seconds",
	 "How long ago each allocation was granted, as of the page's last refresh."},
    [F_BACKEND_AVAILABLE] =
	{"xpu_backend_available", FAMILY_GAUGE, NULL,
	 "1 when the backend's source is usable on this host, 0 when not (reason: why)."},
    [F_BACKEND_UP] =
	{"xpu_backend_up", FAMILY_GAUGE, NULL,
	 "Of the available backends: 1 when the last enumeration answered, 0 when it failed and "
	 "the backend's devices are those it last reported."},
    [F_BACKEND_AGE] =
	{"xpu_backend_last_refresh_age_seconds", FAMILY_GAUGE, "seconds",
	 "How long before the page's last refresh the backend last enumerated its devices."},
    [F_SCRAPE] =
	{"xpu_scrape_duration_seconds", FAMILY_GAUGE, "seconds",
	 "How long the page's last refresh took to render (a scrape itself only copies the page)."},
};

/* Every "ras_errors.<block>.<type>" property of each device (backends/samples.h). */
static void render_ras(struct page *p, const struct device_list *l)
{
	const size_t plen = strlen(SAMPLE_RAS_PREFIX);

	page_family(p, &families[F_RAS]);
	for (size_t i = 0; i < l->n; i++) {
		char *const *props = l->items[i]->properties;

		for (size_t j = 0; props && props[j] && props[j + 1]; j += 2) {
			const char *key = props[j], *type;
			char block[72];
			uint64_t v;
			char *end;

			if (strncmp(key, SAMPLE_RAS_PREFIX, plen) != 0)
				continue;
			key += plen;
			type = strrchr(key, '.');
			if (!type || type == key || (size_t)(type - key) >= sizeof(block) ||
			    (!streq(type + 1, "correctable") && !streq(type + 1, "uncorrectable")))
				continue;
			errno = 0;
			v = strtoull(props[j + 1], &end, 10);
			if (errno != 0 || end == props[j + 1] || *end || props[j + 1][0] == '-')
				continue;
			snprintf(block, sizeof(block), "%.*s", (int)(type - key), key);
			page_sample_u64(p, &families[F_RAS],
					(const char *const[]){"device", l->items[i]->id, "block",
							      block, "type", type + 1, NULL},
					v);
		}
	}
}

static void render_devices(struct page *p, const struct metrics_input *in)
{
	const struct device_list *l = inventory_devices(in->inventory);
	char numa[16];

	page_family(p, &families[F_INFO]);
	for (size_t i = 0; i < l->n; i++) {
		const struct xpu_device *d = l->items[i];

		snprintf(numa, sizeof(numa), "%d", d->numa_node);
		page_sample_u64(p, &families[F_INFO],
				(const char *const[]){"device", d->id, "uuid", d->uuid, "pci",
						      d->has_pci ? d->pci.address : NULL, "vendor",
						      d->vendor, "model", d->model, "kind",
						      xpu_kind_to_string(d->kind), "numa",
						      d->numa_node >= 0 ? numa : NULL, "driver",
						      d->driver, "backend", d->backend, NULL},
				1);
	}

	page_family(p, &families[F_HEALTH]);
	for (size_t i = 0; i < l->n; i++) {
		const struct xpu_device *d = l->items[i];
		const struct health_tracker *t = inventory_health(in->inventory, d->id);
		bool healthy = d->health.state == XPU_HEALTH_HEALTHY;
		const char *reason = healthy ? NULL : d->health.reason ?: "unknown";
		const char *phase = t ? health_phase_to_string(t->phase)
				      : xpu_health_state_to_string(d->health.state);

		/* a suspect device is still served: its reason is the one its phase has */
		if (healthy && t && t->phase != HEALTH_PHASE_HEALTHY && t->reason[0])
			reason = t->reason;
		page_sample_u64(
		    p, &families[F_HEALTH],
		    (const char *const[]){"device", d->id, "phase", phase, "reason", reason, NULL},
		    healthy);
	}

	page_family(p, &families[F_MEM_TOTAL]);
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i]->memory_bytes)
			page_sample_u64(p, &families[F_MEM_TOTAL],
					(const char *const[]){"device", l->items[i]->id, NULL},
					l->items[i]->memory_bytes);

	/* The families a backend reports as properties: each device's first key that it has. */
	static const struct {
		const struct family *f;
		struct {
			const char *key;
			double scale;
		} keys[2];
	} props[] = {
	    {&families[F_MEM_USED], {{"memory_used_bytes", 1}, {"vram_used_bytes", 1}}},
	    {&families[F_UTIL], {{"utilization_ratio", 1}, {SAMPLE_UTILIZATION, 0.01}}},
	    {&families[F_MEM_UTIL], {{SAMPLE_MEMORY_UTILIZATION, 0.01}}},
	    {&families[F_TEMP], {{"temperature_celsius", 1}, {"temperature_c", 1}}},
	    {&families[F_POWER], {{"power_watts", 1}}},
	};
	for (size_t k = 0; k < ELEMENTSOF(props); k++) {
		page_family(p, props[k].f);
		for (size_t i = 0; i < l->n; i++) {
			double v = 0;

			for (size_t j = 0; j < ELEMENTSOF(props[k].keys) && props[k].keys[j].key;
			     j++)
				if (property_number(l->items[i], props[k].keys[j].key, &v)) {
					page_sample_double(
					    p, props[k].f,
					    (const char *const[]){"device", l->items[i]->id, NULL},
					    v * props[k].keys[j].scale);
					break;
				}
		}
	}

	render_ras(p, l);

	page_family(p, &families[F_CORDONED]);
	for (size_t i = 0; i < l->n; i++)
		page_sample_u64(p, &families[F_CORDONED],
				(const char *const[]){"device", l->items[i]->id, NULL},
				in->state && state_cordon(in->state, l->items[i]->id));

	page_family(p, &families[F_REPARTITION]);
	for (size_t i = 0; i < l->n; i++) {
		const struct repartition *r =
		    in->state ? state_repartition(in->state, l->items[i]->id) : NULL;

		page_sample_u64(
		    p, &families[F_REPARTITION],
		    (const char *const[]){"device", l->items[i]->id, "phase",
					  r ? repartition_phase_to_string(r->phase) : NULL, NULL},
		    !!r);
	}
}

/* Each configured shape through the fit query, on the inventory and allocations as they are. */
static void render_shapes(struct page *p, const struct metrics_input *in)
{
	const struct device_list *devs = inventory_devices(in->inventory);
	const struct slice_list *slices = inventory_slices(in->inventory);

	page_family(p, &families[F_SHAPE_FITS]);
	for (size_t i = 0; i < in->n_shapes; i++) {
		const struct config_shape *s = &in->shapes[i];
		const struct fit_request fr = {.memory_bytes = s->memory_bytes,
					       .count = s->count,
					       .resource = s->resource,
					       .numa_local = s->numa_local,
					       .connected = s->connected};
		struct fit_result res = {};

		/* the configuration checked the shape: only -ENOMEM fails */
		if (alloc_fit(devs, slices, in->ledger, &fr, &res, NULL) < 0) {
			p->oom = true;
			return;
		}
		page_sample_u64(p, &families[F_SHAPE_FITS],
				(const char *const[]){"shape", s->name, "resource", s->resource,
						      NULL},
				res.fits);
		fit_result_done(&res);
	}
}

static void render_capacity(struct page *p, const struct metrics_input *in)
{
	const struct device_list *devs = inventory_devices(in->inventory);
	const struct slice_list *slices = inventory_slices(in->inventory);
	static const struct family *const fams[] = {
	    &families[F_SLICES], &families[F_SLICES_HEALTHY], &families[F_SLICES_ALLOCATED]};
	struct capacity_list cap = {};
	char numa[16];

	if (plan_capacity(devs, slices, in->ledger, &cap) < 0) {
		p->oom = true;
		return;
	}
	for (size_t f = 0; f < ELEMENTSOF(fams); f++) {
		page_family(p, fams[f]);
		for (size_t i = 0; i < cap.n; i++)
			for (size_t j = 0; j < cap.items[i].n_numa; j++) {
				const struct capacity_numa *c = &cap.items[i].numa[j];
				unsigned v = f == 0 ? c->total : f == 1 ? c->healthy : c->allocated;

				snprintf(numa, sizeof(numa), "%d", c->node);
				page_sample_u64(
				    p, fams[f],
				    (const char *const[]){"resource", cap.items[i].resource, "numa",
							  c->node >= 0 ? numa : NULL, NULL},
				    v);
			}
	}
	page_family(p, &families[F_ALLOCATED_RATIO]);
	for (size_t i = 0; i < cap.n; i++) {
		unsigned healthy = 0, allocated = 0;

		for (size_t j = 0; j < cap.items[i].n_numa; j++) {
			healthy += cap.items[i].numa[j].healthy;
			allocated += cap.items[i].numa[j].allocated;
		}
		page_sample_double(p, &families[F_ALLOCATED_RATIO],
				   (const char *const[]){"resource", cap.items[i].resource, NULL},
				   healthy ? (double)allocated / healthy : 0.0);
	}
	capacity_list_clear(&cap);
	render_shapes(p, in);

	page_family(p, &families[F_SLICE_HEALTHY]);
	for (size_t i = 0; i < slices->n; i++) {
		const struct xpu_slice *s = slices->items[i];

		page_sample_u64(p, &families[F_SLICE_HEALTHY],
				(const char *const[]){"slice", s->id, "device", s->device_id,
						      "resource", s->resource, NULL},
				slice_usable(s, device_list_find(devs, s->device_id)));
	}
	page_family(p, &families[F_SLICE_ALLOCATED]);
	for (size_t i = 0; i < slices->n; i++) {
		const struct xpu_slice *s = slices->items[i];

		page_sample_u64(p, &families[F_SLICE_ALLOCATED],
				(const char *const[]){"slice", s->id, "device", s->device_id,
						      "resource", s->resource, NULL},
				in->ledger && ledger_find_slice(in->ledger, s->id));
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void render_allocations(struct page *p, const struct metrics_input *in)
{
	size_t n = in->ledger ? in->ledger->n : 0;
	_cleanup_free_ const char **res = calloc(n + 1, sizeof(char *));

	if (!res) {
		p->oom = true;
		return;
	}
	/* per resource: count them in sorted order */
	for (size_t i = 0; i < n; i++)
		res[i] = in->ledger->items[i]->resource ?: "";
	qsort(res, n, sizeof(char *), cmp_str);
	page_family(p, &families[F_ALLOCATIONS]);
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j < n && streq(res[j], res[i]))
			j++;
		page_sample_u64(p, &families[F_ALLOCATIONS],
				(const char *const[]){"resource", res[i], NULL}, j - i);
		i = j;
	}
	page_family(p, &families[F_ALLOCATION_AGE]);
	for (size_t i = 0; i < n; i++) {
		const struct allocation *a = in->ledger->items[i];
		uint64_t created = a->created_usec;
		uint64_t age =
		    in->now_realtime_usec > created ? in->now_realtime_usec - created : 0;

		page_sample_double(
		    p, &families[F_ALLOCATION_AGE],
		    (const char *const[]){"allocation", a->id, "resource", a->resource, NULL},
		    (double)age / 1e6);
	}
}

static void render_backends(struct page *p, const struct metrics_input *in)
{
	size_t n = in->registry ? registry_size(in->registry) : 0;

	page_family(p, &families[F_BACKEND_AVAILABLE]);
	for (size_t i = 0; i < n; i++) {
		const struct xpu_backend *b = registry_get(in->registry, i);

		page_sample_u64(p, &families[F_BACKEND_AVAILABLE],
				(const char *const[]){"backend", b->ops->name, "reason",
						      b->available ? NULL : b->reason, NULL},
				b->available);
	}
	page_family(p, &families[F_BACKEND_UP]);
	for (size_t i = 0; i < n; i++) {
		const struct xpu_backend *b = registry_get(in->registry, i);

		if (b->available)
			page_sample_u64(p, &families[F_BACKEND_UP],
					(const char *const[]){"backend", b->ops->name, NULL},
					b->enumerate_error == 0);
	}
	page_family(p, &families[F_BACKEND_AGE]);
	for (size_t i = 0; i < n; i++) {
		const struct xpu_backend *b = registry_get(in->registry, i);
		uint64_t at = b->enumerated_usec;

		if (!b->available || at == 0)
			continue;
		page_sample_double(p, &families[F_BACKEND_AGE],
				   (const char *const[]){"backend", b->ops->name, NULL},
				   in->now_monotonic_usec > at
				       ? (double)(in->now_monotonic_usec - at) / 1e6
				       : 0.0);
	}
}

int metrics_render(const struct metrics_input *in, enum metrics_format format, char **ret,
		   size_t *ret_len)
{
	struct page p = {.format = format};

	page_family(&p, &families[F_BUILD]);
	page_sample_u64(&p, &families[F_BUILD],
			(const char *const[]){"version", in->version ?: "unknown", NULL}, 1);
	render_devices(&p, in);
	render_capacity(&p, in);
	render_allocations(&p, in);
	render_backends(&p, in);
	page_family(&p, &families[F_SCRAPE]);
	page_sample_double(&p, &families[F_SCRAPE], (const char *const[]){NULL},
			   in->render_seconds);
	if (format == METRICS_OPENMETRICS)
		page_puts(&p, "# EOF\n");
	if (p.oom) {
		free(p.data);
		return -ENOMEM;
	}
	*ret = p.data;
	*ret_len = p.len;
	return 0;
}

/* The quality of one media range's parameters ("; q=0.5"), 1 when not given; -1 malformed. */
static double media_quality(const char *params, size_t len)
{
	const char *q = NULL;

	for (size_t i = 0; i + 1 < len; i++)
		if ((params[i] == 'q' || params[i] == 'Q') && params[i + 1] == '=' &&
		    (i == 0 || params[i - 1] == ';' || params[i - 1] == ' ' ||
		     params[i - 1] == '\t')) {
			q = params + i + 2;
			break;
		}
	if (!q)
		return 1;
	return strtod(q, NULL);
}

enum metrics_format metrics_negotiate(const char *accept)
{
	double om = -1, text = -1, any = -1;

	if (!accept)
		return METRICS_TEXT;
	for (const char *s = accept; *s;) {
		size_t len = strcspn(s, ","), type_len;
		const char *type = s;
		double q;

		while (len && (*type == ' ' || *type == '\t'))
			type++, len--;
		type_len = strcspn(type, ";,");
		while (type_len && (type[type_len - 1] == ' ' || type[type_len - 1] == '\t'))
			type_len--;
		q = media_quality(type, len);
#define IS(lit) (type_len == strlen(lit) && strncasecmp(type, (lit), type_len) == 0)
		if (IS("application/openmetrics-text"))
			om = q > om ? q : om;
		else if (IS("text/plain") || IS("text/*"))
			text = q > text ? q : text;
		else if (IS("*/*"))
			any = q;
#undef IS
		s += strcspn(s, ",");
		if (*s == ',')
			s++;
	}
	if (text < 0)
		text = any;
	return om > 0 && om >= text ? METRICS_OPENMETRICS : METRICS_TEXT;
}
