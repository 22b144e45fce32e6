// SPDX-License-Identifier: GPL-2.0-or-later
/* The inventory's change events and the whole-device slice plan and capacity. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/inventory.h"
#include "shared/strv.h"

static char events[32][64];
static size_t n_events;

static void record(const struct inventory_event *ev, void *userdata)
{
	assert_true(n_events < 32);
	snprintf(events[n_events++], sizeof(events[0]), "%s %s%s%s",
		 inventory_event_type_to_string(ev->type), ev->device->id,
		 ev->previous ? " was " : "",
		 ev->previous ? xpu_health_state_to_string(ev->previous->state) : "");
}

static struct xpu_device *gpu(const char *id, const char *resource)
{
	struct xpu_device *d = device_new();

	d->id = strdup(id);
	d->resource = strdup(resource);
	d->memory_bytes = 1024;
	strv_extend(&d->device_nodes, "/dev/x");
	strv_extend(&d->env, "X=1");
	return d;
}

static void test_events_and_capacity(void **state)
{
	struct inventory *inv = NULL;
	struct device_list l = {};
	struct inventory_stats st;
	struct capacity_list cap;
	const struct slice_list *sl;

	assert_int_equal(inventory_new(&inv), 0);
	inventory_set_listener(inv, record, NULL);

	device_list_push(&l, gpu("b", "nvidia.com/gpu"));
	device_list_push(&l, gpu("a", "nvidia.com/gpu"));
	device_list_push(&l, gpu("c", "amd.com/gpu"));
	assert_int_equal(inventory_update(inv, &l, 1, &st), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(st.added, 3);
	assert_int_equal(n_events, 3);
	assert_string_equal(events[0], "device-added a");
	assert_string_equal(events[2], "device-added c");

	sl = inventory_slices(inv);
	assert_int_equal(sl->n, 3);
	assert_string_equal(sl->items[0]->resource, "nvidia.com/gpu");
	assert_true(sl->items[0]->compute_fraction == 1.0);
	assert_false(sl->items[0]->shared);
	assert_string_equal(sl->items[0]->device_nodes[0], "/dev/x");
	assert_string_equal(sl->items[0]->env[0], "X=1");

	/* b goes unhealthy, c disappears, d appears, a changes its model */
	n_events = 0;
	device_list_push(&l, gpu("a", "nvidia.com/gpu"));
	l.items[0]->model = strdup("new");
	device_list_push(&l, gpu("b", "nvidia.com/gpu"));
	device_set_unhealthy(l.items[1], "fell off the bus");
	device_list_push(&l, gpu("d", "nvidia.com/gpu"));
	assert_int_equal(inventory_update(inv, &l, 2, &st), 0);
	assert_int_equal(st.added, 1);
	assert_int_equal(st.removed, 1);
	assert_int_equal(st.changed, 2);
	assert_int_equal(n_events, 4);
	assert_string_equal(events[0], "device-changed a");
	assert_string_equal(events[1], "health-changed b was healthy");
	assert_string_equal(events[2], "device-removed c");
	assert_string_equal(events[3], "device-added d");

	assert_int_equal(plan_capacity(inventory_devices(inv), inventory_slices(inv), NULL, &cap), 0);
	assert_int_equal(cap.n, 1);
	assert_string_equal(cap.items[0].resource, "nvidia.com/gpu");
	assert_int_equal(cap.items[0].total, 3);
	assert_int_equal(cap.items[0].healthy, 2);
	assert_int_equal(cap.items[0].free, 2);
	capacity_list_clear(&cap);

	/* the same list again: no events */
	n_events = 0;
	device_list_push(&l, gpu("a", "nvidia.com/gpu"));
	l.items[0]->model = strdup("new");
	device_list_push(&l, gpu("b", "nvidia.com/gpu"));
	device_set_unhealthy(l.items[1], "fell off the bus");
	device_list_push(&l, gpu("d", "nvidia.com/gpu"));
	assert_int_equal(inventory_update(inv, &l, 3, &st), 0);
	assert_int_equal(n_events, 0);

	/* recovery through set_health */
	assert_int_equal(inventory_set_health(inv, "b",
					      &(struct xpu_health){ XPU_HEALTH_HEALTHY, NULL }, 4),
			 0);
	assert_int_equal(n_events, 1);
	assert_string_equal(events[0], "health-changed b was unhealthy");
	assert_int_equal(inventory_set_health(inv, "zz",
					      &(struct xpu_health){ XPU_HEALTH_HEALTHY, NULL }, 4),
			 -ENOENT);
	assert_true(inventory_last_seq(inv) == 8);
	inventory_free(inv);
}

/* One device "a", healthy or broken, as a rescan finds it. */
static void rescan_one(struct inventory *inv, bool present, const char *broken, uint64_t now)
{
	struct device_list l = {};

	if (present) {
		device_list_push(&l, gpu("a", "nvidia.com/gpu"));
		if (broken)
			device_set_unhealthy(l.items[0], "%s", broken);
	}
	assert_int_equal(inventory_update(inv, &l, now, NULL), 0);
}

/*
 * A device that leaves while unhealthy and comes back well was reset meanwhile: probation, as
 * for a reset in place (and a health-changed event saying so), not trusted at once. One that left
 * healthy, or long ago, is new.
 */
static void test_return_after_reset(void **state)
{
	const uint64_t s = 1000000;
	struct health_policy pol = { .suspect_after = 2, .probation_usec = 60 * s };
	struct inventory *inv = NULL;
	const struct health_tracker *t;

	assert_int_equal(inventory_new(&inv), 0);
	inventory_set_health_policy(inv, &pol);
	inventory_set_listener(inv, record, NULL);
	rescan_one(inv, true, NULL, 1 * s);
	assert_int_equal(inventory_health_signal(inv, "a", HEALTH_SIGNAL_EVENT,
						 HEALTH_SEVERITY_FATAL, "XID 79", 2 * s),
			 1);

	/* gone (the reset took it off the bus), and back well a minute later */
	rescan_one(inv, false, NULL, 3 * s);
	assert_null(inventory_health(inv, "a"));
	n_events = 0;
	rescan_one(inv, true, NULL, 63 * s);
	t = inventory_health(inv, "a");
	assert_int_equal(t->phase, HEALTH_PHASE_PROBATION);
	assert_int_equal(t->signal, HEALTH_SIGNAL_RESET);
	assert_string_equal(t->reason, "XID 79");
	assert_int_equal(n_events, 2);
	assert_string_equal(events[0], "device-added a");
	assert_string_equal(events[1], "health-changed a was unhealthy");
	assert_int_equal(inventory_find(inv, "a")->health.state, XPU_HEALTH_UNHEALTHY);
	assert_string_equal(inventory_find(inv, "a")->health.reason, "on probation: XID 79");

	/* gone again on probation, and back: probation starts over */
	rescan_one(inv, false, NULL, 100 * s);
	rescan_one(inv, true, NULL, 110 * s);
	t = inventory_health(inv, "a");
	assert_int_equal(t->phase, HEALTH_PHASE_PROBATION);
	assert_true(t->since_usec == 110 * s);
	/* probation over: a rescan that finds it well makes it healthy */
	rescan_one(inv, true, NULL, 171 * s);
	assert_int_equal(inventory_health(inv, "a")->phase, HEALTH_PHASE_HEALTHY);

	/* left healthy, back: nothing to prove */
	rescan_one(inv, false, NULL, 200 * s);
	rescan_one(inv, true, NULL, 201 * s);
	assert_int_equal(inventory_health(inv, "a")->phase, HEALTH_PHASE_HEALTHY);

	/* back broken: unhealthy at once, with the new reason */
	assert_int_equal(inventory_health_signal(inv, "a", HEALTH_SIGNAL_EVENT,
						 HEALTH_SEVERITY_FATAL, "XID 79", 202 * s),
			 1);
	rescan_one(inv, false, NULL, 203 * s);
	rescan_one(inv, true, "config space reads all ones", 204 * s);
	t = inventory_health(inv, "a");
	assert_int_equal(t->phase, HEALTH_PHASE_UNHEALTHY);
	assert_string_equal(t->reason, "config space reads all ones");

	/* left unhealthy longer ago than the window: a new device */
	rescan_one(inv, false, NULL, 205 * s);
	rescan_one(inv, true, NULL, 205 * s + INVENTORY_RETURN_USEC + 1);
	assert_int_equal(inventory_health(inv, "a")->phase, HEALTH_PHASE_HEALTHY);
	inventory_free(inv);
}

static void test_find(void **state)
{
	struct inventory *inv = NULL;
	struct device_list l = {};
	struct xpu_device *d = gpu("0000:18:00.0", "nvidia.com/gpu");

	d->has_pci = true;
	strcpy(d->pci.address, "0000:18:00.0");
	d->uuid = strdup("GPU-abc");
	device_list_push(&l, d);
	assert_int_equal(inventory_new(&inv), 0);
	assert_int_equal(inventory_update(inv, &l, 1, NULL), 0);
	assert_non_null(inventory_find(inv, "0000:18:00.0"));
	assert_non_null(inventory_find(inv, "18:00.0"));
	assert_non_null(inventory_find(inv, "GPU-abc"));
	assert_null(inventory_find(inv, "19:00.0"));
	assert_null(inventory_find(inv, ""));
	inventory_free(inv);
}

/* A GPU as a rescan builds it, its PCI facts written over whatever bytes @fill left. */
static struct xpu_device *gpu_on_pci(const char *id, int fill)
{
	struct xpu_device *d = gpu(id, "nvidia.com/gpu");

	d->has_pci = true;
	memset(&d->pci, fill, sizeof(d->pci));
	strcpy(d->pci.address, id);
	d->pci.vendor_id = 0x10de;
	d->pci.device_id = 0x2330;
	d->pci.class_code = 0x030200;
	d->pci.revision = 0xa1;
	d->pci.link_speed_mts = 32000;
	d->pci.link_width = 16;
	d->pci.max_link_speed_mts = 32000;
	d->pci.max_link_width = 16;
	d->pci.subsystem_vendor_id = 0x10de;
	d->pci.subsystem_device_id = 0x16c1;
	return d;
}

/* A rescan that finds the same device says nothing, whatever its PCI struct's padding holds. */
static void test_rescan_unchanged_pci(void **state)
{
	struct inventory *inv = NULL;
	struct device_list l = {};

	n_events = 0;
	assert_int_equal(inventory_new(&inv), 0);
	inventory_set_listener(inv, record, NULL);
	device_list_push(&l, gpu_on_pci("0000:18:00.0", 0));
	assert_int_equal(inventory_update(inv, &l, 1, NULL), 0);
	assert_int_equal(n_events, 1);
	assert_string_equal(events[0], "device-added 0000:18:00.0");

	device_list_push(&l, gpu_on_pci("0000:18:00.0", 0xa5));
	assert_int_equal(inventory_update(inv, &l, 2, NULL), 0);
	assert_int_equal(n_events, 1); /* no device-changed */

	/* a real difference is still one */
	struct xpu_device *d = gpu_on_pci("0000:18:00.0", 0);

	d->pci.link_width = 8;
	device_list_push(&l, d);
	assert_int_equal(inventory_update(inv, &l, 3, NULL), 0);
	assert_int_equal(n_events, 2);
	assert_string_equal(events[1], "device-changed 0000:18:00.0");
	inventory_free(inv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_and_capacity),
		cmocka_unit_test(test_return_after_reset),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_rescan_unchanged_pci),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
