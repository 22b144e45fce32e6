/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bodies of the API's requests, parsed into plain structs: pure functions over the bytes a
 * client sent (no inventory, no I/O), so that they are unit-tested and fuzzed on their own.
 * Each parser takes @body of @len bytes (NUL-terminated or not, may be NULL when @len is 0) and
 * returns 0 with *ret filled (free it with the matching _done(), also after a failure), -EINVAL
 * with a one-line reason for the client (malloc'd) in *ret_error, or -ENOMEM. Unknown keys are
 * refused: a typo must not silently change nothing. None of them logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/policy.h"
#include "services/enforce.h"

/* POST /v1/allocations; "enforce" goes to *ret_enforce (zeroed: not asked). */
int request_parse_allocate(const char *body, size_t len, struct alloc_request *ret,
			   struct alloc_owner *ret_owner, struct enforce_request *ret_enforce,
			   char **ret_error);
void request_owner_done(struct alloc_owner *o);

/* POST /v1/fit; kind and resource are malloc'd. */
int request_parse_fit(const char *body, size_t len, struct fit_request *ret, char **ret_error);
void request_fit_done(struct fit_request *r);

/* POST /v1/cordon (@cordon) and /v1/uncordon */
struct cordon_request {
	char *device;
	char *reason; /* NULL when not given */
};
int request_parse_cordon(const char *body, size_t len, bool cordon, struct cordon_request *ret,
			 char **ret_error);
void cordon_request_done(struct cordon_request *r);

/* POST /v1/repartition */
struct repartition_request {
	char *device;
	bool policy;	     /* back to the policy; else @layout */
	struct offer layout; /* valid when !policy */
	uint64_t timeout_usec; /* as given, or @timeout_default */
};
int request_parse_repartition(const char *body, size_t len, uint64_t timeout_default,
			      struct repartition_request *ret, char **ret_error);
void repartition_request_done(struct repartition_request *r);
