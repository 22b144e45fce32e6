/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * JSON views of the model: the API's documents, built with jansson (never by string
 * formatting). Each returns a new reference, or NULL on OOM. The shapes are the contract
 * documented in docs/api.md: extend freely, never rename.
 */
#pragma once

#include <jansson.h>

#include "backends/registry.h"
#include "core/inventory.h"
#include "core/alloc.h"
#include "core/plan.h"
#include "services/enforce.h"

/* @t: the device's health state machine (borrowed, may be NULL: its phase is not shown). */
json_t *view_device(const struct xpu_device *d, const struct health_tracker *t);
/* Every device of @inv with its phase, and the event sequence number the list is current with. */
json_t *view_devices(const struct inventory *inv);
/* @holder: the allocation holding the slice, or NULL; @ledger may be NULL. */
json_t *view_slice(const struct xpu_slice *s, const struct xpu_device *parent,
		   const struct allocation *holder);
json_t *view_slices(const struct device_list *devices, const struct slice_list *l,
		    const struct ledger *ledger);
json_t *view_capacity(const struct capacity_list *l);
json_t *view_health(const struct device_list *l);
json_t *view_backends(const struct registry *r);
json_t *view_event(const struct inventory_event *ev);
/* A grant: the slices with everything a workload needs (device nodes, environment, CDI names,
 * NUMA node and CPUs when all slices share one node). */
json_t *view_allocation(const struct allocation *a, const struct device_list *devs,
			const struct slice_list *slices);
/*
 * What an enforced grant's cgroups hold, as read back: "cgroup", "cgroup_v1", "enforced"
 * ({"devices", "memory", "cpus"}), "limits" (the control files' contents) and "devices" (the
 * program ids or v1 rules). @s NULL: the grant is not enforced (nulls and "none").
 */
json_t *view_enforcement(const struct enforce_status *s);
/* The host's enforcement for /v1/version: hierarchy, devices mode, cgroup root. */
json_t *view_enforcer(const struct enforcer *e);
json_t *view_allocations(const struct ledger *l, const struct device_list *devs,
			 const struct slice_list *slices);
struct state;
struct repartition;
/* Per device: the applied and pending offers, the operator's layout, cordon, repartition. */
json_t *view_plan(const struct plan *p, const struct state *st);
json_t *view_repartition(const struct repartition *r);
json_t *view_fit(const struct fit_result *r);
/* {"error": code, "message": message} */
json_t *view_error(const char *code, const char *message);
