/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The systemd path of enforcement, its pure part: the properties of the transient unit that
 * StartTransientUnit (org.freedesktop.systemd1.Manager) makes for a grant — a scope holding
 * the owner process under xpu.slice, DevicePolicy=closed with DeviceAllow= for exactly the
 * granted nodes (systemd adds the standard pseudo-devices itself), AllowedCPUs= and
 * AllowedMemoryNodes= of the grant's NUMA node when asked, MemoryMax= and CPUQuota=. Each
 * property is typed as the D-Bus variant systemd expects; the call is in enforce-systemd.c.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/grant.h"
#include "services/enforce-rules.h"

/* The slice every unit of xpud's goes under. */
#define ENFORCE_UNIT_SLICE "xpu.slice"

enum unit_prop_kind {
	UNIT_PROP_STRING, /* "s" */
	UNIT_PROP_U64,	  /* "t" */
	UNIT_PROP_STRV,	  /* "as" */
	UNIT_PROP_PAIRS,  /* "a(ss)": strv holds the pairs flattened */
	UNIT_PROP_BYTES,  /* "ay" */
	UNIT_PROP_PIDS,	  /* "au": one process */
};

/* The D-Bus signature of a property's variant. */
const char *unit_prop_signature(enum unit_prop_kind k);

struct unit_prop {
	const char *name; /* systemd's property name: "DeviceAllow" */
	enum unit_prop_kind kind;
	char *s;
	uint64_t t;
	uint32_t pid;
	char **strv;
	uint8_t *bytes;
	size_t n_bytes;
};

struct unit_props {
	char *unit; /* "xpu-<allocation id>.scope" */
	struct unit_prop *items;
	size_t n;
};

void unit_props_done(struct unit_props *p);

/* A new property @name (a string literal: it is not copied) of @kind at the end of @p, zeroed. */
struct unit_prop *unit_props_add(struct unit_props *p, const char *name, enum unit_prop_kind kind);

/*
 * The unit and properties for allocation @id granted as @g, whose process @pid the scope
 * takes, with @limits. 0, -EINVAL (numa_cpus asked but the grant spans NUMA nodes or its CPU
 * list does not parse, a quota out of range), -ENOMEM. Pure; does not log.
 */
int unit_props_build(const char *id, const struct grant *g, pid_t pid,
		     const struct enforce_limits *limits, struct unit_props *ret);

/*
 * The properties that confine the existing unit @unit for allocation @id granted as @g, by
 * SetUnitProperties: those of unit_props_build() less Description=, Slice= and PIDs= (the unit
 * has its own), with an empty DeviceAllow= before the granted nodes (SetUnitProperties appends
 * to the unit's list; an empty one clears it). Errors as unit_props_build().
 */
int unit_props_build_existing(const char *id, const char *unit, const struct grant *g,
			      const struct enforce_limits *limits, struct unit_props *ret);

/*
 * @p as a JSON document: {"unit": NAME, "properties": [{"name", "signature", "value"}, ...]},
 * a "t" as a decimal string (UINT64_MAX does not fit a JSON integer), "a(ss)" flattened, "ay" as
 * numbers. What unit_props_from_json() reads back; kept in xpud's state directory. 0 or -ENOMEM.
 */
int unit_props_to_json(const struct unit_props *p, json_t **ret);

/*
 * The properties of a document of unit_props_to_json(), of the names the systemd path sets
 * (DevicePolicy, DeviceAllow, MemoryMax, CPUQuotaPerSecUSec, AllowedCPUs, AllowedMemoryNodes)
 * only. 0, -EINVAL (anything else, or malformed), -ENOMEM.
 */
int unit_props_from_json(json_t *doc, struct unit_props *ret);

/*
 * A CPU list ("0-3,8,10-11") as systemd's AllowedCPUs= bytes: bit N%8 of byte N/8 for CPU N,
 * no trailing zero bytes. 0, -EINVAL (malformed, or a CPU over 65535), -ENOMEM.
 */
int cpu_list_to_mask(const char *list, uint8_t **ret, size_t *ret_n);
