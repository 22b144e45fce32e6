// SPDX-License-Identifier: GPL-2.0-or-later
/* A device's samples, for the metrics (samples.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/samples.h"
#include "shared/macro.h"

bool samples_wanted(const struct config *c)
{
	return c && c->metrics.listen;
}

bool samples_due(const struct config *c, uint64_t last_usec, uint64_t now_usec)
{
	uint64_t interval = c && c->metrics.interval_usec ? c->metrics.interval_usec
							  : CONFIG_METRICS_INTERVAL_USEC;

	return last_usec == 0 || now_usec < last_usec || now_usec - last_usec >= interval;
}

bool samples_key(const char *key)
{
	return streq(key, SAMPLE_UTILIZATION) || streq(key, SAMPLE_MEMORY_UTILIZATION) ||
	       strncmp(key, SAMPLE_RAS_PREFIX, strlen(SAMPLE_RAS_PREFIX)) == 0;
}

int samples_set_ras(struct xpu_device *d, const char *block, uint64_t correctable,
		    uint64_t uncorrectable)
{
	char key[96], value[24];

	if (!*block || strlen(block) > 64 ||
	    strspn(block, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
		strlen(block))
		return -EINVAL;
	snprintf(key, sizeof(key), SAMPLE_RAS_PREFIX "%s.correctable", block);
	snprintf(value, sizeof(value), "%" PRIu64, correctable);
	if (device_set_property(d, key, value) < 0)
		return -ENOMEM;
	snprintf(key, sizeof(key), SAMPLE_RAS_PREFIX "%s.uncorrectable", block);
	snprintf(value, sizeof(value), "%" PRIu64, uncorrectable);
	return device_set_property(d, key, value) < 0 ? -ENOMEM : 0;
}

/* Whether every sample of @a is one of @b's, with the same value. */
static bool samples_within(const struct xpu_device *a, const struct xpu_device *b)
{
	for (size_t i = 0; a->properties && a->properties[i] && a->properties[i + 1]; i += 2)
		if (samples_key(a->properties[i]) &&
		    !streq_ptr(a->properties[i + 1], device_get_property(b, a->properties[i])))
			return false;
	return true;
}

bool samples_equal(const struct xpu_device *a, const struct xpu_device *b)
{
	return samples_within(a, b) && samples_within(b, a);
}

int samples_copy(struct xpu_device *to, const struct xpu_device *from)
{
	char *const *props = from ? from->properties : NULL;
	size_t n = 0;

	/* drop @to's, keeping the order of the rest */
	for (size_t i = 0; to->properties && to->properties[i] && to->properties[i + 1]; i += 2) {
		if (samples_key(to->properties[i])) {
			free(to->properties[i]);
			free(to->properties[i + 1]);
			continue;
		}
		to->properties[n++] = to->properties[i];
		to->properties[n++] = to->properties[i + 1];
	}
	if (to->properties)
		to->properties[n] = NULL;
	for (size_t i = 0; props && props[i] && props[i + 1]; i += 2)
		if (samples_key(props[i]) && device_set_property(to, props[i], props[i + 1]) < 0)
			return samples_copy(to, NULL), -ENOMEM;
	return 0;
}
