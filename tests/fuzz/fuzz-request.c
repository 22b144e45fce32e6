// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the API's request bodies (agent/api/request.c): what any local user may
 * POST to /v1/allocations, /v1/fit, /v1/cordon, /v1/uncordon and /v1/repartition. The first
 * byte picks the request, the rest is the body. Besides memory errors, the harness checks the
 * documented contract: 0, -EINVAL with a reason, or -ENOMEM; what parsed is consistent (a count
 * that matches the slices, a device named, no layout with the policy); and every reason,
 * whatever the client sent, can be answered as a one-line JSON error once escaped as the API
 * does (an answer that cannot be built is a 500 instead of the client's 400).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/vendor-rules.h"
#include "api/request.h"
#include "shared/parse.h"
#include "shared/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reason as the API answers it: escaped and cut to its message buffer. */
static void check_reason(int r, const char *reason)
{
	char msg[512];
	json_t *doc;

	if (r == 0 && reason)
		abort(); /* written on failure only */
	if (r == -EINVAL && (!reason || !reason[0]))
		abort();
	if (!reason)
		return;
	doc = json_pack("{s:s, s:s}", "error", "invalid", "message",
			utf8_escape_invalid(reason, msg, sizeof(msg)));
	if (!doc || strchr(msg, '\n'))
		abort();
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data + 1;
	_cleanup_free_ char *reason = NULL;
	size_t len;
	int r;

	partition_schemes_set(backend_partition_schemes);
	if (size < 1)
		return 0;
	len = size - 1;
	switch (data[0] % 5) {
	case 0: {
		struct alloc_request ar = {};
		struct alloc_owner owner = {};
		struct enforce_request enf = {};

		r = request_parse_allocate(body, len, &ar, &owner, &enf, &reason);
		if (r == 0 && ((!ar.resource && !ar.slices) || (enf.on && owner.kind != OWNER_PID) ||
			       (ar.slices && ar.count != strv_length(ar.slices)) ||
			       (owner.kind != OWNER_NONE && !owner.value)))
			abort();
		free(ar.resource);
		free(ar.device);
		strv_free(ar.slices);
		request_owner_done(&owner);
		break;
	}
	case 1: {
		struct fit_request fr = {};

		r = request_parse_fit(body, len, &fr, &reason);
		if (r == 0 && fr.count > 100000)
			abort();
		request_fit_done(&fr);
		break;
	}
	case 2:
	case 3: {
		struct cordon_request cr = {};

		r = request_parse_cordon(body, len, data[0] % 5 == 2, &cr, &reason);
		if (r == 0 && (!cr.device || !cr.device[0] || (cr.reason && strlen(cr.reason) > 1024)))
			abort();
		cordon_request_done(&cr);
		break;
	}
	default: {
		struct repartition_request rr = {};

		r = request_parse_repartition(body, len, UINT64_MAX, &rr, &reason);
		if (r == 0 && (!rr.device || !rr.device[0] ||
			       (rr.policy && (rr.layout.layout || rr.layout.resource))))
			abort();
		repartition_request_done(&rr);
		break;
	}
	}
	if (r != 0 && r != -EINVAL && r != -ENOMEM)
		abort();
	check_reason(r, reason);
	return 0;
}
