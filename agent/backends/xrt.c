// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The XRT backend: AMD/Xilinx Alveo cards as XRT describes them (the shell, DDR size and banks,
 * clocks, sensors, the loaded xclbin), merged over the generic PCI record of the same card
 * (priority 7: above the sysfs-only backends' 5, below NVML's 10, which never sees an FPGA).
 *
 * xpud never loads XRT: "xpud-helper xrt LIBRARY enumerate" does (agent/runtimes/xrt.c), one run
 * per request, under the one runner (shared/helper-run.h), answering in the helper protocol.
 * Like the NVIDIA backend (nvidia.c): the probe waits for one run, so that the first inventory
 * has the cards; on the loop the enumeration and the health probes answer from the last good
 * answer and start a run that replaces it (a rescan when the cards changed). A run that fails
 * (crashed, timed out, printed nonsense) leaves the last answer standing and the backend
 * "degraded" with the reason; after helper-failures in a row, or once the answer is older than
 * helper-max-age, the cards are unhealthy with it. Runs go on with a back-off until one works.
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
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/xrt-config.h"
#include "core/helper-proto.h"
#include "shared/clock.h"
#include "shared/fileio.h"
#include "shared/helper-run.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define USEC_PER_SEC 1000000ULL
#define XRT_LIBRARY "libxrt_core.so.2"
#define XRT_SWEMU_LIBRARY "libxrt_swemu.so.2"
#define XRT_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define XRT_FAILURES 3
#define XRT_MAX_AGE_USEC (5 * 60 * USEC_PER_SEC)
#define XRT_MEMORY (2ULL << 30)
#define XRT_BACKOFF_MAX_USEC (5 * 60 * USEC_PER_SEC)
#define PCI_DEVICES "bus/pci/devices"

struct xrt {
	const struct xpu_host *host; /* borrowed */
	const struct config *config; /* borrowed */
	sd_event *event;	     /* the loop, once watched; NULL: runs block */
	char *helper;
	char *library;
	struct helper_limits limits;

	/* The last good answer, matched to the PCI records, and why it has no card. */
	struct device_list cards;
	char *empty_reason;
	bool have_answer;
	bool probe_answer;
	uint64_t answer_usec;
	unsigned failures;
	char *failure;
	bool failing;

	struct helper_run *run;
	uint64_t run_usec;
	uint64_t next_run_usec;
	bool run_again;
	bool own_rescan;
	sd_event_source *retry;
	int news_fd;
	bool rescan_pending;
	struct backend_update *updates;
	size_t n_updates;
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

/* ---- runs of the helper ---------------------------------------------------------------- */

static char **helper_argv(const struct xrt *x)
{
	_cleanup_strv_free_ char **argv = NULL;

	if (strv_extend(&argv, x->helper) < 0 ||
	    (!x->host->is_real &&
	     (strv_extend(&argv, "--root") < 0 || strv_extend(&argv, x->host->root) < 0)) ||
	    strv_extend(&argv, "xrt") < 0 || strv_extend(&argv, x->library) < 0 ||
	    strv_extend(&argv, "enumerate") < 0)
		return NULL;
	return TAKE_PTR(argv);
}

/* The answer of a finished run, or why there is none ("xrt helper: crashed (SIGABRT)"). */
static int read_run(struct helper_result *res, struct helper_reply *ret, char **ret_error)
{
	_cleanup_free_ char *why = NULL;
	bool exited = res->error == 0 && !res->timed_out && !res->output_overflow &&
		      WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0;
	int r;

	if (!exited) {
		*ret_error = helper_result_describe(res, "xrt helper", NULL);
		return *ret_error ? (res->error ?: -EIO) : -ENOMEM;
	}
	r = helper_reply_parse(res->output ?: "", res->output_len, ret, &why);
	if (r == -EBADMSG &&
	    asprintf(ret_error, "xrt helper: bad answer: %s", why ?: "unreadable") < 0)
		return -ENOMEM;
	return r;
}

static bool same_cards(const struct device_list *a, const struct device_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!device_equal(a->items[i], b->items[i]))
			return false;
	return true;
}

static int news(struct xrt *x)
{
	return x->news_fd >= 0 && eventfd_write(x->news_fd, 1) < 0 ? -errno : 0;
}

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

/* A good answer replaces the last one. 0 or -ENOMEM. */
static int take_answer(struct xpu_backend *b, struct helper_reply *r)
{
	struct xrt *x = b->userdata;
	bool changed;

	for (size_t i = 0; i < r->n_failures; i++)
		log_warning("XRT device %d cannot be described (%s), ignoring.",
			    r->failures[i].index, r->failures[i].error);
	for (size_t i = 0; i < r->devices.n; i++)
		if (match_card(x->host, r->devices.items[i]) < 0)
			return -ENOMEM;
	device_list_sort(&r->devices);
	changed = !x->have_answer || x->failing || !same_cards(&x->cards, &r->devices);
	device_list_clear(&x->cards);
	x->cards = r->devices;
	r->devices = (struct device_list){};
	if (x->failures)
		log_notice("The XRT helper answers again (%zu cards).", x->cards.n);
	x->have_answer = true;
	x->answer_usec = now_usec(CLOCK_MONOTONIC);
	x->failures = 0;
	x->failing = false;
	x->failure = mfree(x->failure);
	x->next_run_usec = 0;
	free(x->empty_reason);
	x->empty_reason = x->cards.n ? NULL : empty_reason(r);
	free(b->reason);
	b->reason = x->empty_reason ? strdup(x->empty_reason) : NULL;
	if (!changed)
		return 0;
	x->rescan_pending = true;
	return news(x);
}

/* A run gave nothing: @why (taken). XRT's own error (the library went away, a broken emulation
 * config) counts at once; a helper that crashed or hung after helper-failures in a row. */
static int note_failure(struct xpu_backend *b, char *why, bool definite)
{
	struct xrt *x = b->userdata;
	const struct xrt_config *cfg = xrt_config_get(b->config);
	unsigned max = cfg->helper_failures ?: XRT_FAILURES;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	uint64_t max_age = cfg->helper_max_age_usec ?: XRT_MAX_AGE_USEC;
	uint64_t backoff = MIN(USEC_PER_SEC << MIN(x->failures, 16u), XRT_BACKOFF_MAX_USEC);

	x->failures++;
	free(x->failure);
	x->failure = why;
	free(b->reason);
	if (asprintf(&b->reason, "degraded: %s", why) < 0)
		b->reason = NULL;
	x->next_run_usec = now + backoff;
	if (x->failures == 1 || x->failures == max)
		log_warning("%s (%u in a row); %s, next try in %llu s.", why, x->failures,
			    x->have_answer ? "the cards keep XRT's last answer" : "no answer yet",
			    (unsigned long long)(backoff / USEC_PER_SEC));
	if (x->failing ||
	    !(definite || x->failures >= max || (x->have_answer && now - x->answer_usec > max_age)))
		return 0;
	x->failing = true;
	for (size_t i = 0; i < x->cards.n; i++) {
		struct backend_update *u = reallocarray(x->updates, x->n_updates + 1, sizeof(*u));

		if (!u)
			return -ENOMEM;
		x->updates = u;
		u[x->n_updates] = (struct backend_update){
			.id = strdup(x->cards.items[i]->id),
			.health = { .state = XPU_HEALTH_UNHEALTHY, .reason = strdup(why) },
		};
		if (!u[x->n_updates].id || !u[x->n_updates++].health.reason)
			return -ENOMEM;
	}
	return news(x);
}

static int handle_answer(struct xpu_backend *b, int r, struct helper_reply *reply, char *error)
{
	if (r == -ENOMEM) {
		free(error);
		return r;
	}
	if (r < 0)
		return note_failure(b, error ?: strdup("xrt helper: failed"), false);
	free(error);
	if (reply->has_error) {
		char *why = strdup(reply->error);

		return why ? note_failure(b, why, true) : -ENOMEM;
	}
	return take_answer(b, reply);
}

static void arm_retry(struct xpu_backend *b);

static void on_run_done(struct helper_run *run, struct helper_result *res, void *userdata)
{
	struct xpu_backend *b = userdata;
	struct xrt *x = b->userdata;
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	x->run = NULL;
	log_debug("XRT helper run: %llu ms wall, %llu ms CPU.",
		  (unsigned long long)(res->wall_usec / 1000),
		  (unsigned long long)(res->cpu_usec / 1000));
	r = read_run(res, &reply, &error);
	helper_result_done(res);
	r = handle_answer(b, r, &reply, error);
	helper_reply_done(&reply);
	if (r < 0)
		log_warning_errno(r, "Cannot take the XRT helper's answer: %m");
	if (x->run_again || x->failures)
		arm_retry(b);
}

static void start_run(struct xpu_backend *b)
{
	struct xrt *x = b->userdata;
	_cleanup_strv_free_ char **argv = NULL;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	int r;

	if (x->run) {
		x->run_again = true;
		return;
	}
	if (now < x->next_run_usec) {
		arm_retry(b);
		return;
	}
	x->run_again = false;
	argv = helper_argv(x);
	if (!argv) {
		log_oom();
		return;
	}
	r = helper_run_start(x->event, argv, environ, &x->limits, on_run_done, b, &x->run);
	if (r < 0) {
		log_warning_errno(r, "Cannot start the XRT helper: %m");
		x->run = NULL;
		return;
	}
	x->run_usec = now;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct xpu_backend *b = userdata;
	struct xrt *x = b->userdata;

	x->retry = sd_event_source_disable_unref(x->retry);
	start_run(b);
	return 0;
}

static void arm_retry(struct xpu_backend *b)
{
	struct xrt *x = b->userdata;
	uint64_t when = MAX(x->next_run_usec, now_usec(CLOCK_MONOTONIC));

	if (!x->event || x->retry)
		return;
	if (sd_event_add_time(x->event, &x->retry, CLOCK_MONOTONIC, when, 0, on_retry, b) < 0)
		log_warning("Cannot schedule the next XRT helper run; it waits for a probe.");
}

/* Without a loop (start-up, tools): a run now, to its end. @ret_reply: the answer, when the
 * caller wants it (the probe). */
static int run_blocking(struct xpu_backend *b, struct helper_reply *ret_reply, char **ret_error)
{
	struct xrt *x = b->userdata;
	_cleanup_strv_free_ char **argv = helper_argv(x);
	struct helper_result res = {};
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	if (!argv)
		return -ENOMEM;
	r = helper_run_sync(argv, environ, &x->limits, &res);
	if (r < 0)
		return r;
	r = read_run(&res, &reply, &error);
	helper_result_done(&res);
	if (ret_reply) {
		*ret_reply = reply;
		*ret_error = error;
		return r;
	}
	r = handle_answer(b, r, &reply, error);
	helper_reply_done(&reply);
	return r;
}

/* ---- the ops ------------------------------------------------------------------------- */

static int xrt_enumerate(struct xpu_backend *b, struct device_list *list)
{
	struct xrt *x = b->userdata;
	int r;

	if (!x->event) {
		r = x->probe_answer ? 0 : run_blocking(b, NULL, NULL);
		x->probe_answer = false;
		if (r < 0)
			return r;
	} else if (x->own_rescan) {
		x->own_rescan = false;
	} else {
		start_run(b);
	}
	for (size_t i = 0; i < x->cards.n; i++) {
		struct xpu_device *d;

		r = device_dup(x->cards.items[i], &d);
		if (r < 0)
			return r;
		if ((x->failing && device_set_unhealthy(d, "%s", x->failure) < 0) ||
		    device_list_push(list, d) < 0) {
			device_free(d);
			return -ENOMEM;
		}
	}
	return 0;
}

static int xrt_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	struct xrt *x = b->userdata;
	const struct xpu_device *c;
	uint64_t interval = b->config ? b->config->health_interval_usec : 0;
	int r;

	if (!x->event) {
		r = run_blocking(b, NULL, NULL);
		if (r < 0)
			return r;
	} else if (!x->run && now_usec(CLOCK_MONOTONIC) - x->run_usec >= interval / 2) {
		start_run(b);
	}
	free(d->health.reason);
	d->health = (struct xpu_health){};
	if (x->failing)
		return device_set_unhealthy(d, "%s", x->failure);
	c = device_list_find(&x->cards, d->id);
	if (!c)
		return x->have_answer ? -ENODEV : 0;
	if (c->health.state == XPU_HEALTH_UNHEALTHY)
		return device_set_fault(d, c->health.action, "%s", c->health.reason ?: "unhealthy");
	return 0;
}

static int xrt_watch(struct xpu_backend *b)
{
	struct xrt *x = b->userdata;

	if (x->news_fd < 0) {
		x->news_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (x->news_fd < 0)
			return -errno;
	}
	x->event = b->event;
	if (!x->event)
		return -EOPNOTSUPP;
	if (!x->have_answer)
		arm_retry(b);
	return x->news_fd;
}

static int xrt_dispatch(struct xpu_backend *b, struct backend_update **ret_updates, size_t *ret_n,
			bool *ret_rescan)
{
	struct xrt *x = b->userdata;
	eventfd_t v;

	(void)eventfd_read(x->news_fd, &v);
	*ret_updates = TAKE_PTR(x->updates);
	*ret_n = x->n_updates;
	x->n_updates = 0;
	*ret_rescan = x->rescan_pending;
	x->own_rescan = x->rescan_pending;
	x->rescan_pending = false;
	return 0;
}

static void xrt_free(struct xrt *x)
{
	if (!x)
		return;
	if (x->run)
		helper_run_abandon(x->run);
	sd_event_source_disable_unref(x->retry);
	safe_close(x->news_fd);
	backend_updates_free(x->updates, x->n_updates);
	device_list_clear(&x->cards);
	free(x->empty_reason);
	free(x->failure);
	free(x->helper);
	free(x->library);
	free(x);
}

static void xrt_close(struct xpu_backend *b)
{
	xrt_free(b->userdata);
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
	const char *library = library_of(b);
	struct helper_reply reply = {};
	struct xrt *x;
	char *error = NULL;
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
	x->host = b->host;
	x->config = b->config;
	x->news_fd = -EBADF;
	x->limits = (struct helper_limits){
		.timeout_usec = cfg->helper_timeout_usec ?: XRT_TIMEOUT_USEC,
		.output_max = HELPER_OUTPUT_MAX,
	};
	x->limits.cpu_seconds = (unsigned)(x->limits.timeout_usec / USEC_PER_SEC) + 1;
	if (helper_address_limit_usable())
		x->limits.address_space = XRT_MEMORY;
	if (helper_program_path(&x->helper) < 0 || !(x->library = strdup(library))) {
		r = -ENOMEM;
		goto fail;
	}
	r = run_blocking(b, &reply, &error);
	if (r == -ENOENT || r == -EACCES || r == -ENOEXEC) {
		/* no helper to run */
		if (asprintf(ret_reason, "%s (%s)", error, x->helper) < 0)
			*ret_reason = NULL;
		free(error);
		goto fail;
	}
	if (r >= 0 && reply.has_error && reply.error_unavailable) {
		/* XRT is not there (no library, no emulation config): not a fault */
		*ret_reason = TAKE_PTR(reply.error);
		r = reply.error_errno;
		helper_reply_done(&reply);
		goto fail;
	}
	/* an answer, or a failure that is tried again with a back-off */
	r = handle_answer(b, r, &reply, error);
	helper_reply_done(&reply);
	if (r < 0)
		goto fail;
	x->rescan_pending = false; /* the first inventory is this answer's */
	x->probe_answer = true;
	log_info("XRT answers through %s: %s, %zu cards.", x->helper, x->library, x->cards.n);
	return 0;
fail:
	xrt_close(b);
	return r;
}

const struct xpu_backend_ops xrt_backend_ops = {
	.name = "xrt",
	.priority = 7,
	.probe = xrt_probe,
	.enumerate = xrt_enumerate,
	.refresh = xrt_refresh,
	.watch = xrt_watch,
	.dispatch = xrt_dispatch,
	.close = xrt_close,
};
