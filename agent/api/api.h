/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The local API: routes of /v1 over the HTTP server, JSON answers from the inventory, the
 * /v1/events change streams, and who may call what (peer credentials).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api/http.h"
#include "backends/registry.h"
#include "core/inventory.h"
#include "services/allocations.h"
#include "services/enforce.h"
#include "services/repartition.h"

struct api_context {
	struct inventory *inventory; /* borrowed */
	struct registry *registry;   /* borrowed */
	const char *root;	     /* host root, reported by /v1/version */
	/* Mutating calls: root, the daemon's own user, or members of this group. */
	bool admin_gid_set;
	gid_t admin_gid;
	/* Runs a rescan now; fills the stats. */
	int (*rescan)(void *userdata, struct inventory_stats *ret);
	/* Reads the configuration again; an invalid one is kept out, its error in *ret_error. */
	int (*reload)(void *userdata, char **ret_error);
	struct allocations *allocations; /* borrowed */
	struct repartitioner *repartitioner; /* borrowed; NULL: no cordons or repartitions */
	struct enforcer *enforcer;	     /* borrowed; NULL: nothing is enforced */
	void *userdata;
};

struct api;

/* Copies @ctx. Returns 0 or -ENOMEM. */
int api_new(const struct api_context *ctx, struct api **ret);
/* Ends every event stream (final chunk) and frees. */
struct api *api_free(struct api *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct api *, api_free);
void api_set_admin_gid(struct api *a, bool set, gid_t gid);

/* The http_privileged_t for http_server_set_privileged(): root, the daemon's user, the admin
 * group (who may also mutate). @userdata is the struct api. */
bool api_peer_privileged(const struct ucred *cred, const gid_t *groups, size_t n_groups,
			 void *userdata);
/* The http_handler_t for http_server_new(); @userdata is the struct api. */
int api_handle(struct http_conn *c, const struct http_request *req, void *userdata);

/* Feeds one inventory event to every /v1/events stream. */
void api_broadcast(struct api *a, const struct inventory_event *ev);
/* Feeds a cordon's or repartition's news to every /v1/events stream ("type": "repartition"). */
void api_broadcast_repartition(struct api *a, const struct repartition_news *n);
size_t api_n_streams(const struct api *a);
