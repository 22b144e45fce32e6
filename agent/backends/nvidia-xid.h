/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What an NVIDIA XID error means for the GPU that reported it: a table after NVIDIA's XID
 * catalogue, overridable from the configuration ("nvidia: {xid-actions: ...}"). Pure data and lookups.
 */
#pragma once

#include "core/config.h"

struct nvidia_xid {
	unsigned xid;
	enum health_action action;
	const char *what; /* the catalogue's name for it */
};

/*
 * The action for @xid: the configuration's override if it names one, else the table's, else
 * HEALTH_ACTION_RESTART_APP for XIDs the table does not know (an unknown error is the
 * application's until a probe says otherwise). *ret_what is the catalogue's name or "unknown
 * XID".
 */
enum health_action nvidia_xid_action(unsigned xid, const struct config *c, const char **ret_what);
