// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/kmod-config.h"
#include "backends/nvidia-config.h"
#include "backends/registry.h"
#include "backends/vendor-rules.h"
#include "backends/xrt-config.h"
#include "shared/clock.h"
#include "shared/log.h"

const struct xpu_backend_ops *const registry_builtin_ops[] = {
	&pci_backend_ops,
	&accel_backend_ops,
	&drm_backend_ops,
	&nvidia_backend_ops,
	&kmod_backend_ops,
	&xrt_backend_ops,
	&fpga_backend_ops,
};
const size_t registry_builtin_n = ELEMENTSOF(registry_builtin_ops);

const struct config_section *const registry_config_sections[] = {
	&nvidia_config_section,
	&kmod_config_section,
	&xrt_config_section,
	NULL,
};

struct registry {
	struct xpu_backend *backends;
	struct device_list *last; /* last good records per backend */
	size_t n;
};

int registry_new(const struct xpu_host *host, const struct config *config,
		 const struct xpu_backend_ops *const *ops, size_t n, struct registry **ret)
{
	struct registry *r;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->backends = calloc(n ?: 1, sizeof(*r->backends));
	r->last = calloc(n ?: 1, sizeof(*r->last));
	if (!r->backends || !r->last) {
		free(r->backends);
		free(r->last);
		free(r);
		return -ENOMEM;
	}
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		struct xpu_backend *b = &r->backends[i];
		int k;

		b->ops = ops[i];
		b->host = host;
		b->config = config;
		k = b->ops->probe(b, &b->reason);
		b->available = k >= 0;
		if (k < 0)
			log_info_errno(k, "Backend %s unavailable: %s", b->ops->name,
				       b->reason ?: "no reason given");
		else
			log_debug("Backend %s available.", b->ops->name);
	}
	*ret = r;
	return 0;
}

void registry_set_event(struct registry *r, sd_event *e)
{
	for (size_t i = 0; i < r->n; i++)
		r->backends[i].event = e;
}

struct registry *registry_free(struct registry *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		if (r->backends[i].available && r->backends[i].ops->close)
			r->backends[i].ops->close(&r->backends[i]);
		free(r->backends[i].reason);
		free(r->backends[i].kmsg_reason);
		device_list_clear(&r->last[i]);
	}
	free(r->backends);
	free(r->last);
	free(r);
	return NULL;
}

void backend_updates_free(struct backend_update *u, size_t n)
{
	for (size_t i = 0; u && i < n; i++) {
		free(u[i].id);
		free(u[i].health.reason);
	}
	free(u);
}

const char *backend_uevent_get(const struct backend_uevent *ev, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = ev->props; p && p < ev->props + ev->props_len; p += strlen(p) + 1)
		if (strncmp(p, key, klen) == 0 && p[klen] == '=')
			return p + klen + 1;
	return NULL;
}

struct xpu_backend *registry_get_mutable(struct registry *r, size_t i)
{
	return i < r->n ? &r->backends[i] : NULL;
}

size_t registry_size(const struct registry *r)
{
	return r->n;
}

const struct xpu_backend *registry_get(const struct registry *r, size_t i)
{
	return i < r->n ? &r->backends[i] : NULL;
}

static int list_copy(const struct device_list *from, struct device_list *to)
{
	for (size_t i = 0; i < from->n; i++) {
		struct xpu_device *d;
		int k;

		k = device_dup(from->items[i], &d);
		if (k < 0)
			return k;
		k = device_list_push(to, d);
		if (k < 0)
			return k;
	}
	return 0;
}

int registry_merge(struct device_list *in, const int *prio, struct device_list *out)
{
	int *taken_prio = NULL;
	int k = 0;

	taken_prio = calloc(in->n ?: 1, sizeof(int));
	if (!taken_prio)
		return -ENOMEM;
	for (size_t i = 0; i < in->n; i++) {
		struct xpu_device *d = TAKE_PTR(in->items[i]);
		size_t j;

		/* Records without a PCI address (platform devices) are never merged. */
		for (j = 0; d->has_pci && j < out->n; j++)
			if (out->items[j]->has_pci &&
			    streq(out->items[j]->pci.address, d->pci.address))
				break;
		if (!d->has_pci || j == out->n) {
			taken_prio[out->n] = prio[i];
			k = device_list_push(out, d);
			if (k < 0)
				break;
			continue;
		}
		if (prio[i] > taken_prio[j]) {
			k = device_merge(d, out->items[j]);
			if (k < 0) {
				device_free(d);
				break;
			}
			device_free(out->items[j]);
			out->items[j] = d;
			taken_prio[j] = prio[i];
		} else {
			k = device_merge(out->items[j], d);
			device_free(d);
			if (k < 0)
				break;
		}
	}
	free(taken_prio);
	device_list_clear(in);
	if (k >= 0)
		device_list_sort(out);
	return k;
}

/*
 * A backend's word on a device's partitions that does not hold together (a profile without a
 * name or instances, a partition listed twice, a device node twice): the device is offered
 * whole, and the warning names it. 0 or -ENOMEM.
 */
static int partitioning_sane(const struct xpu_backend *b, struct xpu_device *d)
{
	_cleanup_free_ char *why = NULL;
	int r = device_check_partitioning(d, &why);

	if (r < 0 || !why)
		return r;
	log_device_full_errno(
	    LOG_WARNING, 0, d->id, NULL,
	    "Backend %s reported partitions of %s that do not hold together (%s); "
	    "offering it whole.",
	    b->ops->name, d->id, why);
	device_drop_partitioning(d);
	return 0;
}

int registry_enumerate(struct registry *r, struct device_list *ret)
{
	struct device_list all = {}, merged = {};
	int *prio = NULL;
	int k = 0;

	for (size_t i = 0; i < r->n; i++) {
		struct xpu_backend *b = &r->backends[i];
		struct device_list fresh = {};

		if (!b->available)
			continue;
		k = b->ops->enumerate(b, &fresh);
		b->enumerate_error = k < 0 ? k : 0;
		if (k >= 0)
			b->enumerated_usec = now_usec(CLOCK_MONOTONIC);
		if (k < 0) {
			log_warning_errno(k, "Backend %s failed to enumerate, keeping its %zu last "
					     "known devices: %m",
					  b->ops->name, r->last[i].n);
			device_list_clear(&fresh);
		} else {
			for (size_t j = 0; j < fresh.n; j++) {
				fresh.items[j]->backend = b->ops->name;
				fresh.items[j]->rules = b->ops->rules;
				k = partitioning_sane(b, fresh.items[j]);
				if (k < 0)
					break;
			}
			if (k < 0) {
				device_list_clear(&fresh);
				goto out;
			}
			device_list_clear(&r->last[i]);
			r->last[i] = fresh;
		}
		size_t before = all.n;

		k = list_copy(&r->last[i], &all);
		if (k < 0)
			goto out;
		int *p = realloc(prio, (all.n ?: 1) * sizeof(int));

		if (!p) {
			k = -ENOMEM;
			goto out;
		}
		prio = p;
		for (size_t j = before; j < all.n; j++)
			prio[j] = b->ops->priority;
	}
	k = registry_merge(&all, prio, &merged);
	if (k < 0)
		goto out;
	/* a device its backend has no rules for gets its vendor's (a GPU without its library) */
	for (size_t i = 0; i < merged.n; i++)
		if (!merged.items[i]->rules)
			merged.items[i]->rules = vendor_rules(merged.items[i]->vendor);
	*ret = merged;
	merged = (struct device_list){};
out:
	free(prio);
	device_list_clear(&all);
	device_list_clear(&merged);
	return k;
}

/*
 * Every backend that reported the device re-probes it: the one that owns the record first, then
 * the others (the generic PCI backend sees a dead link that a vendor library may not). The
 * device is unhealthy when any of them says so; the owner's -ENODEV/-ESTALE wins.
 */
int registry_refresh(struct registry *r, struct xpu_device *d)
{
	bool owner_found = false, probed = false;
	int k;

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < r->n; i++) {
			struct xpu_backend *b = &r->backends[i];
			bool owner = streq_ptr(b->ops->name, d->backend);
			_cleanup_(device_freep) struct xpu_device *copy = NULL;

			if (!b->available || owner != (pass == 0))
				continue;
			if (owner)
				owner_found = true;
			else if (!d->has_pci || !device_list_find(&r->last[i], d->id))
				continue;
			if (!b->ops->refresh)
				continue;
			if (owner) {
				k = b->ops->refresh(b, d);
				if (k < 0)
					return k;
				probed = true;
				continue;
			}
			if (device_dup(d, &copy) < 0)
				return -ENOMEM;
			free(copy->health.reason);
			copy->health = (struct xpu_health){};
			if (b->ops->refresh(b, copy) < 0)
				continue; /* the owner's view stands */
			probed = true;
			if (copy->health.state == XPU_HEALTH_UNHEALTHY &&
			    d->health.state != XPU_HEALTH_UNHEALTHY &&
			    device_set_fault(d, copy->health.action, "%s",
					     copy->health.reason ?: "unhealthy") < 0)
				return -ENOMEM;
		}
	if (!owner_found)
		return -ENODEV;
	return probed ? 0 : -EOPNOTSUPP;
}

/* The available backend that produced @d, or NULL with the reason in *ret_error. */
static struct xpu_backend *owner_of(struct registry *r, const struct xpu_device *d,
				    char **ret_error)
{
	for (size_t i = 0; i < r->n; i++) {
		struct xpu_backend *b = &r->backends[i];

		if (b->available && streq_ptr(b->ops->name, d->backend))
			return b;
	}
	if (asprintf(ret_error, "no available backend owns device %s", d->id) < 0)
		*ret_error = NULL;
	return NULL;
}

/* -EOPNOTSUPP with a reason naming what @b cannot do. */
static int unsupported(const struct xpu_backend *b, const char *what, char **ret_error)
{
	if (asprintf(ret_error, "backend %s cannot %s", b->ops->name, what) < 0)
		return -ENOMEM;
	return -EOPNOTSUPP;
}

int registry_apply_offer(struct registry *r, const struct xpu_device *d, const struct offer *o,
			 char **ret_error)
{
	struct xpu_backend *b = owner_of(r, d, ret_error);

	if (!b)
		return -ENODEV;
	if (!b->ops->apply_offer)
		return unsupported(b, "change partitions", ret_error);
	return b->ops->apply_offer(b, d, o, ret_error);
}

int registry_reset(struct registry *r, const struct xpu_device *d, char **ret_reason)
{
	struct xpu_backend *b = owner_of(r, d, ret_reason);

	if (!b)
		return -ENODEV;
	if (!b->ops->reset)
		return unsupported(b, "reset devices", ret_reason);
	return b->ops->reset(b, d, ret_reason);
}
