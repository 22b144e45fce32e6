// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The XID catalogue as xpud acts on it. Facts from NVIDIA's "XID Errors" documentation: what
 * each error is and whether the catalogue asks to restart the application, reset the GPU or
 * reboot the node. Errors caused by (and contained to) an application never fail the GPU; the
 * ones that need a reset do, whatever the incumbents' fixed ignore lists say.
 */
#include <stddef.h>

#include "backends/nvidia-config.h"
#include "backends/nvidia-xid.h"
#include "shared/macro.h"

static const struct nvidia_xid xid_table[] = {
	{ 13, HEALTH_ACTION_APP_ERROR, "graphics engine exception" },
	{ 31, HEALTH_ACTION_APP_ERROR, "GPU memory page fault" },
	{ 32, HEALTH_ACTION_RESET_DEVICE, "invalid or corrupted push buffer stream" },
	{ 38, HEALTH_ACTION_RESET_DEVICE, "driver firmware error" },
	{ 43, HEALTH_ACTION_RESTART_APP, "GPU stopped processing" },
	{ 45, HEALTH_ACTION_IGNORE, "preemptive cleanup after a previous error" },
	{ 48, HEALTH_ACTION_RESET_DEVICE, "double-bit ECC error" },
	{ 61, HEALTH_ACTION_RESET_DEVICE, "internal micro-controller breakpoint" },
	{ 62, HEALTH_ACTION_RESET_DEVICE, "internal micro-controller halt" },
	{ 63, HEALTH_ACTION_IGNORE, "ECC page retirement or row remapping recorded" },
	{ 64, HEALTH_ACTION_RESET_DEVICE, "ECC page retirement or row remapping failed" },
	{ 68, HEALTH_ACTION_APP_ERROR, "video decoder exception" },
	{ 69, HEALTH_ACTION_APP_ERROR, "graphics engine class error" },
	{ 74, HEALTH_ACTION_RESET_DEVICE, "NVLink error" },
	{ 79, HEALTH_ACTION_RESET_DEVICE, "GPU has fallen off the bus" },
	{ 92, HEALTH_ACTION_IGNORE, "high single-bit ECC error rate" },
	{ 94, HEALTH_ACTION_RESTART_APP, "contained ECC error" },
	{ 95, HEALTH_ACTION_RESET_DEVICE, "uncontained ECC error" },
	{ 109, HEALTH_ACTION_RESTART_APP, "context switch timeout" },
	{ 119, HEALTH_ACTION_RESET_DEVICE, "GSP RPC timeout" },
	{ 120, HEALTH_ACTION_RESET_DEVICE, "GSP error" },
	{ 140, HEALTH_ACTION_RESET_DEVICE, "unrecovered ECC error" },
};

enum health_action nvidia_xid_action(unsigned xid, const struct config *c, const char **ret_what)
{
	const struct xid_actions *overrides = &nvidia_config_get(c)->xid_actions;
	const char *what = "unknown XID";
	enum health_action a = HEALTH_ACTION_RESTART_APP;

	for (size_t i = 0; i < ELEMENTSOF(xid_table); i++)
		if (xid_table[i].xid == xid) {
			what = xid_table[i].what;
			a = xid_table[i].action;
			break;
		}
	for (size_t i = 0; i < overrides->n; i++)
		if (overrides->items[i].xid == xid)
			a = overrides->items[i].action;
	if (ret_what)
		*ret_what = what;
	return a;
}
