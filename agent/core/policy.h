/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The partition policy: how each device is offered to workloads. Part of xpud.yaml
 * ("partitions:", an ordered list of rules; the first rule whose selector matches a device
 * decides), parsed by config.c. Devices no rule matches are offered whole.
 *
 * An offer is what the planner (plan.c) turns into slices. The offer in effect for a device (its
 * "applied" offer) changes only while none of its slices is allocated: a reload that asks for a
 * different offer leaves it pending until the device is idle.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/device.h"

enum offer_kind {
	OFFER_WHOLE,	     /* one slice: the device (its backend's partitions if it has any) */
	OFFER_REPLICAS,	     /* count time-shared slices of the whole device, flagged shared */
	OFFER_MEMORY_SHARES, /* count slices of share_bytes memory and a compute fraction each */
	/* a hardware partition layout of a scheme (core/rules.h): the slices are the partitions
	 * that exist */
	OFFER_PARTITIONS,
	_OFFER_KIND_MAX,
	_OFFER_KIND_INVALID = -22,
};

struct partition_scheme;

/* "whole", "replicas", "memory-shares", or the scheme's name for OFFER_PARTITIONS (@scheme). */
const char *offer_kind_to_string(enum offer_kind k, const struct partition_scheme *scheme);
/* The kind named @s, and for a scheme's name the scheme in *ret_scheme (may be NULL). */
enum offer_kind offer_kind_from_string(const char *s, const struct partition_scheme **ret_scheme);

#define OFFER_MAX_COUNT 64 /* replicas or memory shares per device */
/* The least memory share: CUDA's MPS limits pinned device memory in whole MiB, and a limit of
 * 0M is no share at all. */
#define OFFER_MIN_SHARE_BYTES (1ULL << 20)

struct offer {
	enum offer_kind kind;
	unsigned count;	       /* REPLICAS, MEMORY_SHARES */
	uint64_t share_bytes;  /* MEMORY_SHARES: memory per share; 0: the device's / count */
	double compute;	       /* MEMORY_SHARES: compute fraction per share; 0: 1 / count */
	/* PARTITIONS: the scheme (static), the layout ({"1g.10gb" x 7}, {"all-1g.10gb"}, or the
	 * one mode of a scheme of modes; NULL-terminated), and whether xpud may switch the
	 * device's partition mode on where it is off */
	const struct partition_scheme *scheme;
	char **layout;
	bool enable;
	char *resource;	       /* resource name for this offer's slices; NULL: the default */
};

/* "whole, replicas, memory-shares, <scheme> or <scheme>": the kinds an offer can have, for
 * messages. Caller frees; NULL on OOM. */
char *offer_kinds_list(void);

void offer_done(struct offer *o);
int offer_copy(const struct offer *src, struct offer *dst);
bool offer_equal(const struct offer *a, const struct offer *b);
/* A short human-readable form for the API and logs: "whole", "replicas=4",
 * "memory-shares=4x20GiB@0.25", "<scheme>=<layout, comma-joined>". Caller frees. */
char *offer_to_string(const struct offer *o);

/* Which devices a rule applies to; every field given must match (NULL: any). */
struct selector {
	bool all;
	char *vendor; /* a short vendor name, as devices have it */
	char *model;  /* fnmatch(3) pattern on the model name: "NVIDIA H100*" */
	char *pci;    /* canonical PCI address */
	char *uuid;
};

struct policy_rule {
	struct selector match;
	struct offer offer;
	unsigned line; /* where the rule starts in the file, for messages */
};

struct policy {
	struct policy_rule *rules;
	size_t n_rules;
};

void policy_done(struct policy *p);
bool selector_matches(const struct selector *s, const struct xpu_device *d);
/* The offer the policy asks for @d: the first matching rule's, or whole. Never NULL. */
const struct offer *policy_offer_for(const struct policy *p, const struct xpu_device *d);
