/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A device's samples: what its load says now (busy time, error counts), for the metrics page
 * only (docs/metrics.md). They travel as device properties like a temperature, but a backend
 * reads them only while the configuration has a metrics listener, and lets a new value in at
 * most once per metrics interval: a changed property changes the device's record, and a
 * changed record is a rescan, which a node without metrics should not pay for.
 *
 * The keys: "utilization_percent" and "memory_utilization_percent" (0 to 100, the busy time of
 * the device and of its memory over the backend's sampling period), and
 * "ras_errors.<block>.correctable" / "ras_errors.<block>.uncorrectable" (the errors counted
 * since the driver loaded).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/device.h"

#define SAMPLE_UTILIZATION "utilization_percent"
#define SAMPLE_MEMORY_UTILIZATION "memory_utilization_percent"
#define SAMPLE_RAS_PREFIX "ras_errors."

/* Whether samples are read at all: @c (may be NULL) has a metrics listener. */
bool samples_wanted(const struct config *c);
/* Whether samples last read at @last_usec (CLOCK_MONOTONIC; 0: never) may be read again at
 * @now_usec: a metrics interval of @c has gone by. */
bool samples_due(const struct config *c, uint64_t last_usec, uint64_t now_usec);
/* Whether property @key is a sample. */
bool samples_key(const char *key);
/* Sets @d's RAS counts of @block (a word of letters, digits and underscores; anything else is
 * refused with -EINVAL). 0, -EINVAL or -ENOMEM. Does not log. */
int samples_set_ras(struct xpu_device *d, const char *block, uint64_t correctable,
		    uint64_t uncorrectable);
/* Whether @a and @b have the same samples. */
bool samples_equal(const struct xpu_device *a, const struct xpu_device *b);
/* Replaces @to's samples with @from's (@from NULL: drops them). 0 or -ENOMEM (@to then has
 * none). Does not log. */
int samples_copy(struct xpu_device *to, const struct xpu_device *from);
