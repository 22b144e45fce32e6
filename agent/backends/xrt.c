// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The XRT backend: AMD/Xilinx Alveo cards as XRT describes them (the shell, DDR size and banks,
 * clocks, sensors, the loaded xclbin), merged over the generic PCI record of the same card
 * (priority 7: above the sysfs-only backends' 5, below NVML's 10, which never sees an FPGA).
 *
 * xpud never loads XRT: "xpud-helper xrt LIBRARY enumerate" does (agent/runtimes/xrt.c), one run
 * per request, under the one runner (shared/helper-run.h), answering in the helper protocol.
 * Its runs, the last good answer and what a failed run means are helper-backend.c's, as for the
 * NVIDIA backend: the probe waits for one run, so that the first inventory has the cards; on the
 * loop the enumeration and the health probes answer from the last good answer and start a run
 * that replaces it (a rescan when the cards changed). A run that fails (crashed, timed out,
 * printed nonsense) leaves the last answer standing and the backend "degraded" with the reason;
 * after helper-failures in a row, or once the answer is older than helper-max-age, the cards are
 * unhealthy with it. Runs go on with a back-off until one works.
 *
 * XRT names a card by its user function; the PCI backend folds a card's functions into one
 * device named by the lowest (the management function on XDMA shells). The answer is matched to
 * that one, and the card gets the nodes a container needs, as AMD/Xilinx's device plugin gives
 * them: /dev/xclmgmt<instance> of the management function and the user function's
 * /dev/dri/renderD*.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/helper-backend.h"
#include "core/config.h"
#include "backends/offered-modes.h"
#include "backends/vendor-rules.h"
#include "backends/xrt-config.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define XRT_LIBRARY "libxrt_core.so.2"
#define XRT_SWEMU_LIBRARY "libxrt_swemu.so.2"
#define PCI_DEVICES "bus/pci/devices"

struct xrt {
	/* The XRT helper's runs and what they answered (helper-backend.h). */
	struct helper_backend hb;
	/* The last good answer (hb's): the cards, matched to the PCI records, and why it has
	 * none. */
	struct device_list cards;
	char *empty_reason;
	/* the cards offered compute unit by compute unit (xrt-cus: cus) */
	struct offered_modes cus;
};

/* ---- the card's PCI functions and nodes ------------------------------------------------ */

/* The lowest function present in the slot of @addr ("0000:3b:00.1" -> "0000:3b:00.0"). */
static void card_address(const struct xpu_host *host, const char *addr, char ret[static 13])
{
	memcpy(ret, addr, 13);
	for (int f = 0; f < addr[11] - '0'; f++) {
		char path[64];

		snprintf(path, sizeof(path), PCI_DEVICES "/%.11s%d", addr, f);
		if (exists_at(host->sys_fd, path) > 0) {
			ret[11] = (char)('0' + f);
			return;
		}
	}
}

/* /dev/xclmgmt<instance> of the slot's management function, and the user function's render
 * nodes. */
static int add_nodes(const struct xpu_host *host, const char *user, struct xpu_device *d)
{
	_cleanup_strv_free_ char **nodes = NULL;
	_cleanup_(closedirp) DIR *dir = NULL;
	char path[96];
	struct dirent *de;

	for (int f = 0; f < 8; f++) {
		_cleanup_free_ char *driver = NULL, *instance = NULL;
		unsigned n;

		snprintf(path, sizeof(path), PCI_DEVICES "/%.11s%d/driver", user, f);
		if (f == user[11] - '0' || readlink_basename_at(host->sys_fd, path, &driver) < 0 ||
		    !streq(driver, "xclmgmt"))
			continue;
		snprintf(path, sizeof(path), PCI_DEVICES "/%.11s%d/instance", user, f);
		if (read_attr_at(host->sys_fd, path, 32, &instance) < 0 ||
		    safe_atou(instance, &n) < 0)
			continue;
		snprintf(path, sizeof(path), "/dev/xclmgmt%u", n);
		if (strv_extend(&nodes, path) < 0)
			return -ENOMEM;
	}
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/drm", user);
	if (opendir_at(host->sys_fd, path, &dir) >= 0) {
		_cleanup_strv_free_ char **render = NULL;

		while ((de = readdir(dir))) {
			char *node;

			if (strncmp(de->d_name, "renderD", 7) != 0)
				continue;
			if (asprintf(&node, "/dev/dri/%s", de->d_name) < 0 ||
			    strv_consume(&render, node) < 0)
				return -ENOMEM;
		}
		strv_sort(render);
		STRV_FOREACH(r, render)
			if (strv_extend(&nodes, *r) < 0)
				return -ENOMEM;
	}
	strv_free(d->device_nodes);
	d->device_nodes = TAKE_PTR(nodes);
	return 0;
}

/* XRT's record of a card as the inventory holds it: named like the PCI backend's record of
 * the same card, with its nodes. */
static int match_card(const struct xpu_host *host, struct xpu_device *d)
{
	char user[13], card[13];

	if (!d->has_pci)
		return 0;
	memcpy(user, d->pci.address, sizeof(user));
	card_address(host, user, card);
	if (device_set_property(d, "user_function", user) < 0 ||
	    device_set_string(&d->id, card) < 0)
		return -ENOMEM;
	memcpy(d->pci.address, card, sizeof(card));
	return add_nodes(host, user, d);
}

/* ---- the answers ----------------------------------------------------------------------- */

/* Why an answer lists no card, for /v1/backends. */
static char *empty_reason(const struct helper_reply *r)
{
	const char *emu = NULL, *declared = NULL;

	for (size_t i = 0; r->facts && r->facts[i] && r->facts[i + 1]; i += 2)
		if (streq(r->facts[i], "emulation"))
			emu = r->facts[i + 1];
		else if (streq(r->facts[i], "emconfig_devices"))
			declared = r->facts[i + 1];
	if (streq_ptr(emu, "sw_emu") && streq_ptr(declared, "0"))
		return strdup("XRT lists no devices: the software emulation's emconfig.json "
			      "declares none");
	if (r->n_failures)
		return strdup("XRT lists no devices it can open");
	return strdup("XRT lists no devices");
}

/* A good answer's cards as the inventory names them: by their PCI backend's record. */
static int take_cards(struct xpu_backend *b, struct helper_reply *r)
{
	struct xrt *x = b->userdata;

	for (size_t i = 0; i < r->n_failures; i++)
		log_warning("XRT device %d cannot be described (%s), ignoring.",
			    r->failures[i].index, r->failures[i].error);
	for (size_t i = 0; i < r->devices.n; i++)
		if (match_card(x->hb.host, r->devices.items[i]) < 0)
			return -ENOMEM;
	return 0;
}

/* An answer without a card says why in /v1/backends. */
static int taken(struct xpu_backend *b, const struct helper_reply *r)
{
	struct xrt *x = b->userdata;

	free(x->empty_reason);
	x->empty_reason = x->cards.n ? NULL : empty_reason(r);
	b->reason = x->empty_reason ? strdup(x->empty_reason) : NULL;
	return 0;
}

static const struct helper_backend_ops xrt_helper_ops = {
	.runtime = "xrt",
	.what = "xrt helper",
	.name = "XRT",
	.devices_word = "cards",
	.kept = "the cards keep XRT's last answer",
	.none = "no answer yet",
	.take = take_cards,
	.taken = taken,
};

/* ---- the ops ------------------------------------------------------------------------- */

/* The slice of compute unit @cu ("<kernel>:<cu>"), the @k'th of @n of card @d: a share of the
 * card, its resource named by the kernel, the unit named to the workload. */
static int add_compute_unit(struct xpu_device *d, const char *cu, size_t k, size_t n)
{
	_cleanup_(slice_freep) struct xpu_slice *s = calloc(1, sizeof(*s));
	char resource[80];
	size_t len;

	if (!s)
		return -ENOMEM;
	len = (size_t)snprintf(resource, sizeof(resource), "xilinx.com/cu-%.*s",
			       (int)MIN(strcspn(cu, ":"), (size_t)60), cu);
	for (char *c = resource + strlen("xilinx.com/"); *c; c++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c))
			*c = '_';
	while (len > strlen("xilinx.com/") && strchr("._-", resource[len - 1]))
		resource[--len] = '\0';
	if (asprintf(&s->id, "%s/cu-%zu", d->id, k) < 0) {
		s->id = NULL;
		return -ENOMEM;
	}
	if (!(s->device_id = strdup(d->id)) ||
	    !(s->resource = strdup(resource_name_valid(resource) ? resource : "xilinx.com/cu")) ||
	    !(s->profile = strdup("cus")) || strv_env_set(&s->env, "XPU_FPGA_COMPUTE_UNIT", cu) < 0)
		return -ENOMEM;
	s->shared = true;
	s->compute_fraction = 1.0 / (double)n;
	s->health.state = XPU_HEALTH_HEALTHY;
	return device_add_partition(d, TAKE_PTR(s));
}

/* A card with compute units (an xclbin loaded): its profiles, and the units as partitions while
 * the policy offers it unit by unit. */
static int describe_compute_units(struct xrt *x, struct xpu_device *d)
{
	_cleanup_strv_free_ char **cus = NULL;
	_cleanup_free_ char *copy = NULL;
	const char *list = device_get_property(d, "compute_units");
	char *save = NULL;
	size_t n;
	int r;

	if (!list)
		return 0;
	copy = strdup(list);
	if (!copy)
		return -ENOMEM;
	for (char *cu = strtok_r(copy, ",", &save); cu; cu = strtok_r(NULL, ",", &save))
		if (strv_extend(&cus, cu) < 0)
			return -ENOMEM;
	if (!cus)
		return 0; /* a list of commas only */
	n = strv_length(cus);
	r = device_add_profile(d, &(struct xpu_partition_profile){
					  .name = (char *)"whole", .total = 1, .free = 1,
					  .compute_fraction = 1 });
	if (r >= 0)
		r = device_add_profile(d, &(struct xpu_partition_profile){
						  .name = (char *)"cus", .total = (unsigned)n,
						  .free = (unsigned)n, .compute_fraction = 1.0 / n });
	if (r < 0)
		return r;
	d->partition_capable = n > 1;
	if (!offered_modes_get(&x->cus, d->id))
		return 0;
	d->partitioned = true;
	for (size_t k = 0; k < n; k++) {
		r = add_compute_unit(d, cus[k], k, n);
		if (r < 0)
			return r;
	}
	return 0;
}

static int xrt_enumerate(struct xpu_backend *b, struct device_list *list)
{
	struct xrt *x = b->userdata;
	size_t before = list->n;
	int r = helper_backend_enumerate(&x->hb, list);

	for (size_t i = before; r >= 0 && i < list->n; i++)
		r = describe_compute_units(x, list->items[i]);
	return r;
}

/* Unit by unit, or whole again: only what is offered changes. */
static int xrt_apply_offer(struct xpu_backend *b, const struct xpu_device *d,
			   const struct offer *o, char **ret_error)
{
	struct xrt *x = b->userdata;

	if (!x || o->kind != OFFER_PARTITIONS || o->scheme != &xrt_cus_scheme || !o->layout ||
	    !o->layout[0])
		return -EOPNOTSUPP;
	if (!device_get_property(d, "compute_units")) {
		if (asprintf(ret_error, "no xclbin with compute units is loaded on the card") < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	return offered_modes_set(&x->cus, d->id, streq(o->layout[0], "cus"));
}

static int xrt_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	struct xrt *x = b->userdata;
	int r = helper_backend_refresh(&x->hb, d);

	return r < 0 ? r : helper_backend_health(&x->hb, d);
}

static int xrt_watch(struct xpu_backend *b)
{
	struct xrt *x = b->userdata;

	return helper_backend_watch(&x->hb);
}

static int xrt_dispatch(struct xpu_backend *b, struct backend_update **ret_updates, size_t *ret_n,
			bool *ret_rescan)
{
	struct xrt *x = b->userdata;

	helper_backend_dispatch(&x->hb, ret_updates, ret_n, ret_rescan);
	return 0;
}

static void xrt_close(struct xpu_backend *b)
{
	struct xrt *x = b->userdata;

	if (!x)
		return;
	helper_backend_done(&x->hb);
	offered_modes_done(&x->cus);
	free(x->empty_reason);
	free(x);
	b->userdata = NULL;
}

/* The shim: the configuration's, the environment's (tests), the emulation library under
 * XCL_EMULATION_MODE=sw_emu, else the PCIe one. A simulated host root loads none unless told:
 * its cards would not be the root's. */
static const char *library_of(const struct xpu_backend *b)
{
	const struct xrt_config *cfg = xrt_config_get(b->config);
	const char *mode = secure_getenv("XCL_EMULATION_MODE");

	if (cfg->library)
		return cfg->library;
	if (secure_getenv("XPU_XRT_LIBRARY"))
		return secure_getenv("XPU_XRT_LIBRARY");
	if (streq_ptr(mode, "sw_emu"))
		return XRT_SWEMU_LIBRARY;
	return b->host->is_real ? XRT_LIBRARY : NULL;
}

static int xrt_probe(struct xpu_backend *b, char **ret_reason)
{
	const struct xrt_config *cfg = xrt_config_get(b->config);
	const struct helper_backend_settings settings = {
		.failures = cfg->helper_failures,
		.max_age_usec = cfg->helper_max_age_usec,
		.timeout_usec = cfg->helper_timeout_usec,
	};
	const char *library = library_of(b);
	struct xrt *x;
	int r;

	if (!library)
		return (*ret_reason = strdup("a simulated host root uses no XRT unless "
					     "XPU_XRT_LIBRARY or XCL_EMULATION_MODE names one"))
			       ? -ENOENT
			       : -ENOMEM;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	b->userdata = x;
	offered_modes_init(&x->cus);
	r = helper_backend_probe(&x->hb, &xrt_helper_ops, b, &x->cards, library, &settings, ret_reason);
	if (r < 0) {
		xrt_close(b);
		return r;
	}
	log_info("XRT answers through %s: %s, %zu cards.", x->hb.helper, x->hb.library,
		 x->cards.n);
	return 0;
}

const struct xpu_backend_ops xrt_backend_ops = {
	.name = "xrt",
	.priority = 7,
	.probe = xrt_probe,
	.enumerate = xrt_enumerate,
	.refresh = xrt_refresh,
	.watch = xrt_watch,
	.dispatch = xrt_dispatch,
	.apply_offer = xrt_apply_offer,
	.close = xrt_close,
};
