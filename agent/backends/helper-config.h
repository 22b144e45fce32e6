/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What every helper backend's configuration section has (backends/helper-backend.h): how long
 * one run of its helper may take, and how many failures in a row or how old an answer makes its
 * devices unhealthy. Pure: for the sections' parsers.
 */
#pragma once

#include <stdint.h>

#include "core/config.h"

/* The keys every helper backend's configuration section has, read into the fields
 * helper_failures, helper_max_age_usec and helper_timeout_usec of @type. 0: the default. */
#define HELPER_BACKEND_CONFIG_KEYS(type)                                                           \
	CONFIG_KEY_UNSIGNED("helper-failures", type, helper_failures, 1, 1000),                    \
	    CONFIG_KEY_DURATION("helper-max-age", type, helper_max_age_usec),                      \
	    CONFIG_KEY_DURATION("helper-timeout", type, helper_timeout_usec)

/* Those settings as a backend hands them over; 0: the default of each. */
struct helper_backend_settings {
	unsigned failures;     /* helper-failures: 3 */
	uint64_t max_age_usec; /* helper-max-age: 5 min */
	uint64_t timeout_usec; /* helper-timeout: 30 s */
	uint64_t memory;       /* the helper's address space: 2 GiB (sanitizer builds: none) */
};
