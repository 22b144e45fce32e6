// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "api/api.h"
#include "api/http.h"
#include "api/metrics.h"
#include "backends/registry.h"
#include "core/inventory.h"
#include "core/plan.h"
#include "core/state.h"
#include "daemon/kmsg-reader.h"
#include "daemon/manager.h"
#include "daemon/uevent.h"
#include "kube/cdi.h"
#include "kube/deviceplugin.h"
#include "kube/nfd.h"
#include "services/allocations.h"
#include "services/enforce.h"
#include "services/recovery.h"
#include "services/repartition.h"
#include "shared/clock.h"
#include "shared/fileio.h"
#include "shared/host.h"
#include "shared/lockfile.h"
#include "shared/sockaddr.h"
#include "shared/log.h"
#include "shared/strv.h"
#include "xpu/client.h"

struct manager;

/* A backend's event fd in the loop. */
struct backend_watch {
	struct manager *manager;
	struct xpu_backend *backend;
	sd_event_source *source;
};

struct manager {
	sd_event *event;
	struct config config;
	char *config_path;
	bool config_explicit;
	int cli_log_level;

	char *socket_path;
	bool socket_activated;
	bool socket_owned; /* we bound it: remove it on exit */
	bool socket_fixed; /* --socket or socket activation: the configuration has no say */
	int lock_fd;	     /* <socket>.lock */
	int state_lock_fd;   /* <state-dir>/xpud.lock: one xpud per state directory */
	int kubelet_lock_fd; /* the kubelet directory: one xpud registers per kubelet */
	int listen_fd;	     /* until the server takes it */

	struct xpu_host *host;
	struct registry *registry;
	struct inventory *inventory;
	struct allocations *allocations;
	char *state_dir;
	char *kubelet_dir;
	struct api *api;
	struct http_server *server;
	struct metrics *metrics; /* NULL: no metrics listener configured */
	struct uevent_monitor *uevents;
	char *uevent_socket;
	struct deviceplugin *plugin; /* NULL: no kubelet directory, every resource is local */
	struct cdi_writer *cdi;	     /* NULL: CDI specs are not written */
	struct nfd_writer *nfd;	     /* NULL: no NFD directory, no node labels */
	struct recovery *recovery;   /* resets of faulty idle devices (reset-when-idle) */

	sd_event_source *rescan_source;
	sd_event_source *health_source;
	struct repartitioner *repartitioner; /* cordons, layouts made without a node drain */
	struct enforcer *enforcer;	     /* confines grants that ask for it */
	sd_event_source *plan_post;	     /* post: a new plan may move a repartition on */
	sd_event_source *plan_step;	     /* defer: ... which this does */
	uint64_t plan_generation;	     /* the inventory generation last stepped on */
	struct plan_attempts attempts;	     /* applies that left their offer pending */
	struct backend_watch *watches; /* one per backend; source NULL where it has none */
	struct kmsg_reader *kmsg;      /* the kernel log, for the backends that read it */
	uint64_t rescans;
};

static void update_status(struct manager *m)
{
	const struct device_list *l = inventory_devices(m->inventory);
	size_t healthy = 0;

	for (size_t i = 0; i < l->n; i++)
		healthy += l->items[i]->health.state == XPU_HEALTH_HEALTHY;
	sd_notifyf(false, "STATUS=%zu devices (%zu healthy), serving on %s", l->n, healthy,
		   m->socket_path);
}

static void on_inventory_event(const struct inventory_event *ev, void *userdata)
{
	struct manager *m = userdata;
	const struct xpu_device *d = ev->device;
	const char *pci = d->has_pci ? d->pci.address : NULL;
	/* The first inventory is summarised once, not device by device. */
	int quiet = inventory_generation(m->inventory) <= 1 ? LOG_DEBUG : LOG_INFO;

	switch (ev->type) {
	case INVENTORY_DEVICE_ADDED:
		log_device_full_errno(quiet, 0, d->id, pci, "Device %s added: %s %s (%s).", d->id,
				      d->vendor ?: "?", d->model ?: "?",
				      xpu_kind_to_string(d->kind));
		break;
	case INVENTORY_DEVICE_REMOVED:
		log_device_full_errno(LOG_NOTICE, 0, d->id, pci, "Device %s removed.", d->id);
		break;
	case INVENTORY_DEVICE_CHANGED:
		log_device_full_errno(LOG_INFO, 0, d->id, pci, "Device %s changed.", d->id);
		break;
	case INVENTORY_HEALTH_CHANGED: {
		const struct health_transition *tr = ev->transition;
		char phase[64], signal[64], from[64];
		/* the phase and what moved it, for journalctl XPU_HEALTH_PHASE=probation */
		const char *fields[] = { phase, signal, tr ? from : NULL, NULL };

		snprintf(phase, sizeof(phase), "XPU_HEALTH_PHASE=%s",
			 ev->health ? health_phase_to_string(ev->health->phase)
				    : xpu_health_state_to_string(d->health.state));
		snprintf(signal, sizeof(signal), "XPU_HEALTH_SIGNAL=%s",
			 tr ? health_signal_to_string(tr->signal) : "rescan");
		snprintf(from, sizeof(from), "XPU_HEALTH_FROM=%s",
			 tr ? health_phase_to_string(tr->from) : "");
		if (tr && (tr->to == HEALTH_PHASE_SUSPECT || tr->to == HEALTH_PHASE_PROBATION))
			log_device_fields_errno(LOG_NOTICE, 0, d->id, pci, fields,
						"Device %s is %s (was %s, on %s): %s", d->id,
						health_phase_to_string(tr->to),
						health_phase_to_string(tr->from),
						health_signal_to_string(tr->signal),
						tr->reason[0] ? tr->reason : "probes answer");
		else if (d->health.state == XPU_HEALTH_HEALTHY)
			log_device_fields_errno(LOG_NOTICE, 0, d->id, pci, fields,
						"Device %s is healthy again (was: %s).", d->id,
						ev->previous->reason ?:
							(tr ? health_phase_to_string(tr->from)
							    : "unhealthy"));
		else
			log_device_fields_errno(quiet > LOG_INFO ? quiet : LOG_WARNING, 0, d->id,
						pci, fields, "Device %s is unhealthy: %s", d->id,
						d->health.reason ?: "no reason given");
		break;
	}
	default:
		break;
	}
	if (m->api)
		api_broadcast(m->api, ev);
	metrics_changed(m->metrics);
	deviceplugin_changed(m->plugin);
	cdi_writer_changed(m->cdi);
	nfd_writer_changed(m->nfd);
}

/* Resources the device plugin serves belong to kubelet: the local API does not grant them. */
static bool resource_served_to_kubelet(const char *resource, void *userdata)
{
	struct manager *m = userdata;

	return deviceplugin_serves(m->plugin, resource);
}

static int start_deviceplugin(struct manager *m)
{
	struct deviceplugin_options dpo = {};
	int r;

	dpo.dir = m->kubelet_dir;
	dpo.pre_start_hook = m->config.pre_start_hook;
	dpo.pre_start_required = m->config.pre_start_hook;
	r = deviceplugin_new(m->event, &dpo, m->inventory, m->allocations, &m->plugin);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	allocations_set_reserved(m->allocations, resource_served_to_kubelet, m);
	return 0;
}

/* @flag if given, else @key of the configuration, else @def below the host root. */
static char *host_dir(struct manager *m, const char *flag, const char *key, const char *def)
{
	char *dir = NULL;

	if (flag || key)
		return strdup(flag ?: key);
	if (m->host->is_real)
		return strdup(def);
	if (asprintf(&dir, "%s%s", m->host->root, def) < 0)
		return NULL;
	return dir;
}

/* CDI specs and node labels: what a container runtime and the scheduler read from files. */
static int start_kube_files(struct manager *m, const struct manager_options *o)
{
	_cleanup_free_ char *cdi = host_dir(m, o->cdi_dir, m->config.cdi_dir, CDI_DEFAULT_DIR);
	_cleanup_free_ char *nfd = host_dir(m, o->nfd_dir, m->config.nfd_dir, NFD_DEFAULT_DIR);
	int r;

	if (!cdi || !nfd)
		return log_oom();
	r = cdi_writer_new(m->event, cdi, m->host->root, m->inventory, &m->cdi);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the CDI specs: %m");
	r = nfd_writer_new(m->event, nfd, m->inventory, &m->nfd);
	if (r < 0 && r != -ENOENT)
		return r;
	return 0;
}

static int manager_rescan(void *userdata, struct inventory_stats *ret)
{
	struct manager *m = userdata;
	struct device_list fresh = {};
	struct inventory_stats st;
	int r;

	r = registry_enumerate(m->registry, &fresh);
	if (r < 0)
		return r;
	recovery_note_devices(m->recovery, &fresh);
	r = inventory_update(m->inventory, &fresh, now_usec(CLOCK_REALTIME), &st);
	device_list_clear(&fresh);
	if (r < 0)
		return r;
	/* An offer pending on a device that is idle now applied: remember it. */
	if (st.state_changed && m->allocations)
		(void)allocations_save(m->allocations);
	m->rescans++;
	if (st.added || st.removed || st.changed)
		update_status(m);
	if (ret)
		*ret = st;
	return 0;
}

static int on_rescan(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;
	int r;

	r = manager_rescan(m, NULL);
	if (r < 0)
		log_error_errno(r, "Failed to rescan devices, keeping the previous inventory: %m");
	return 0;
}

static void schedule_rescan(struct manager *m)
{
	/* Coalesces a burst of uevents (a driver binding eight GPUs) into one rescan. */
	(void)sd_event_source_set_enabled(m->rescan_source, SD_EVENT_ONESHOT);
}

static void request_rescan(void *userdata)
{
	schedule_rescan(userdata);
}

/* What a backend's events said (its dispatch, or its kmsg op): @u (freed here), a rescan. */
static void handle_backend_news(struct manager *m, struct backend_update *u, size_t n,
				bool rescan)
{
	/* A backend's bad news is an event that acts at once; its good news, a probe that answers. */
	for (size_t i = 0; i < n; i++) {
		(void)inventory_health_signal(m->inventory, u[i].id,
					      u[i].health.state == XPU_HEALTH_HEALTHY
						      ? HEALTH_SIGNAL_PROBE_OK
						      : HEALTH_SIGNAL_EVENT,
					      HEALTH_SEVERITY_FATAL, u[i].health.reason,
					      now_usec(CLOCK_REALTIME));
		recovery_note(m->recovery, u[i].id, &u[i].health);
	}
	backend_updates_free(u, n);
	if (rescan)
		schedule_rescan(m);
	if (n)
		update_status(m);
}

/* What backend @b's op answered to @what (r: its return): its news, or a warning. */
static void backend_answered(struct manager *m, struct xpu_backend *b, int r, const char *what,
			     struct backend_update *u, size_t n, bool rescan)
{
	if (r < 0) {
		log_warning_errno(r, "Backend %s failed to handle %s, ignoring: %m", b->ops->name,
				  what);
		backend_updates_free(u, n);
		return;
	}
	handle_backend_news(m, u, n, rescan);
}

static void on_uevent(const struct uevent *ev, void *userdata)
{
	struct manager *m = userdata;

	const struct backend_uevent bev = { .action = ev->action, .devpath = ev->devpath,
					    .subsystem = ev->subsystem, .props = ev->props,
					    .props_len = ev->props_len };

	if (!uevent_is_relevant(ev))
		return;
	log_debug("uevent %s %s (%s)", ev->action, ev->devpath, ev->subsystem ?: "-");
	for (size_t i = 0; i < registry_size(m->registry); i++) {
		struct xpu_backend *b = registry_get_mutable(m->registry, i);
		struct backend_update *u = NULL;
		bool rescan = false;
		size_t n = 0;
		int r;

		if (!b->available || !b->ops->uevent)
			continue;
		r = b->ops->uevent(b, &bev, &u, &n, &rescan);
		backend_answered(m, b, r, "a uevent", u, n, rescan);
	}
	schedule_rescan(m);
}

static int on_backend_news(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct backend_watch *w = userdata;
	struct xpu_backend *b = w->backend;
	struct backend_update *u = NULL;
	bool rescan = false;
	size_t n = 0;
	int r;

	r = b->ops->dispatch(b, &u, &n, &rescan);
	if (r < 0) {
		log_warning_errno(r, "Backend %s failed to report its events, ignoring: %m",
				  b->ops->name);
		return 0;
	}
	handle_backend_news(w->manager, u, n, rescan);
	return 0;
}

/* One record of the kernel log (NULL: the end of a batch) to every backend that reads it. */
static void on_kmsg_record(const struct kmsg_record *rec, void *userdata)
{
	struct manager *m = userdata;

	for (size_t i = 0; i < registry_size(m->registry); i++) {
		struct xpu_backend *b = registry_get_mutable(m->registry, i);
		struct backend_update *u = NULL;
		bool rescan = false;
		size_t n = 0;
		int r;

		if (!b->available || !b->ops->kmsg)
			continue;
		r = b->ops->kmsg(b, rec, &u, &n, &rescan);
		backend_answered(m, b, r, "a record of the kernel log", u, n, rescan);
	}
}

/* Whether the kernel log is read for the backends that read it, and why not, for /v1/backends. */
static void set_kmsg_state(struct manager *m, const char *reason)
{
	for (size_t i = 0; i < registry_size(m->registry); i++) {
		struct xpu_backend *b = registry_get_mutable(m->registry, i);

		if (!b->ops->kmsg)
			continue;
		b->kmsg_read = !reason;
		free(b->kmsg_reason);
		b->kmsg_reason = reason ? strdup(reason) : NULL;
	}
}

static void on_kmsg_stopped(const char *reason, void *userdata)
{
	set_kmsg_state(userdata, reason);
}

/*
 * The kernel log, after the first inventory (the backends match its lines to their devices),
 * when an available backend reads it. Not readable (no CAP_SYSLOG, no /dev/kmsg in a
 * container) is not fatal: one warning, and /v1/backends says why.
 */
static int start_kmsg(struct manager *m)
{
	_cleanup_free_ char *reason = NULL, *what = NULL;
	bool first = true;
	size_t len = 0;
	FILE *f;
	int r;

	/* "XIDs (nvidia)" */
	f = open_memstream(&what, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < registry_size(m->registry); i++) {
		const struct xpu_backend *b = registry_get(m->registry, i);

		if (!b->available || !b->ops->kmsg)
			continue;
		fprintf(f, "%s%s (%s)", first ? "" : ", ", b->ops->kmsg_what ?: "?", b->ops->name);
		first = false;
	}
	if (fclose(f) != 0 || !what)
		return -ENOMEM;
	if (!what[0])
		return 0; /* nobody reads it */
	r = kmsg_reader_new(m->event,
			    &(struct kmsg_reader_options){ .host = m->host,
							    .state_dir = m->state_dir,
							    .record = on_kmsg_record,
							    .stopped = on_kmsg_stopped,
							    .userdata = m },
			    &m->kmsg, &reason);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		log_warning("The kernel log cannot be read (%s): %s are not seen, ignoring.",
			    reason, what);
		set_kmsg_state(m, reason);
		return 0;
	}
	log_debug("Reading the kernel log for %s.", what);
	set_kmsg_state(m, NULL);
	return 0;
}

static int watch_backends(struct manager *m)
{
	size_t n = registry_size(m->registry);

	m->watches = calloc(n ?: 1, sizeof(*m->watches));
	if (!m->watches)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct xpu_backend *b = registry_get_mutable(m->registry, i);
		int fd, r;

		if (!b->available || !b->ops->watch || !b->ops->dispatch)
			continue;
		fd = b->ops->watch(b);
		if (fd == -EOPNOTSUPP)
			continue;
		if (fd < 0) {
			log_warning_errno(fd, "Backend %s cannot report events, its devices are "
					      "probed only: %m",
					  b->ops->name);
			continue;
		}
		m->watches[i] = (struct backend_watch){ .manager = m, .backend = b };
		r = sd_event_add_io(m->event, &m->watches[i].source, fd, EPOLLIN, on_backend_news,
				    &m->watches[i]);
		if (r < 0)
			return r;
		(void)sd_event_source_set_description(m->watches[i].source, b->ops->name);
	}
	return 0;
}

static void probe_health(struct manager *m)
{
	const struct device_list *l = inventory_devices(m->inventory);
	_cleanup_free_ char **ids = NULL;
	size_t n = l->n;

	/* Health updates may reorder nothing, but copy ids: callbacks run during the loop. */
	ids = calloc(n + 1, sizeof(char *));
	if (!ids)
		return (void)log_oom();
	for (size_t i = 0; i < n; i++)
		ids[i] = l->items[i]->id;
	for (size_t i = 0; i < n; i++) {
		const struct xpu_device *cur = inventory_find(m->inventory, ids[i]);
		_cleanup_(device_freep) struct xpu_device *copy = NULL;
		int r;

		if (!cur || device_dup(cur, &copy) < 0)
			continue;
		r = registry_refresh(m->registry, copy);
		log_debug("Health probe of %s: %s.", copy->id,
			  r < 0 ? strerror(-r)
				: copy->health.state == XPU_HEALTH_HEALTHY ? "healthy"
									   : "unhealthy");
		if (r == -ENODEV || r == -ESTALE) {
			schedule_rescan(m);
			continue;
		}
		if (r == -EOPNOTSUPP)
			continue;
		if (r < 0) {
			char reason[256];

			snprintf(reason, sizeof(reason), "health probe failed: %s", strerror(-r));
			(void)inventory_health_signal(m->inventory, copy->id,
						      HEALTH_SIGNAL_PROBE_FAILED, 0, reason,
						      now_usec(CLOCK_REALTIME));
			continue;
		}
		(void)inventory_health_signal(m->inventory, copy->id,
					      copy->health.state == XPU_HEALTH_HEALTHY
						      ? HEALTH_SIGNAL_PROBE_OK
						      : HEALTH_SIGNAL_PROBE_FAILED,
					      0, copy->health.reason, now_usec(CLOCK_REALTIME));
		recovery_note(m->recovery, copy->id, &copy->health);
	}
	update_status(m);
}

static int on_health_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct manager *m = userdata;

	probe_health(m);
	/* a time source is one-shot: set the next time and enable it again */
	(void)sd_event_source_set_time(s, usec + m->config.health_interval_usec);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

static int arm_health_timer(struct manager *m)
{
	uint64_t now;
	int r;

	if (m->config.health_interval_usec == 0) {
		m->health_source = sd_event_source_disable_unref(m->health_source);
		return 0;
	}
	r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	if (m->health_source) {
		r = sd_event_source_set_time(m->health_source,
					     now + m->config.health_interval_usec);
		if (r >= 0)
			r = sd_event_source_set_enabled(m->health_source, SD_EVENT_ONESHOT);
		return r;
	}
	r = sd_event_add_time(m->event, &m->health_source, CLOCK_MONOTONIC,
			      now + m->config.health_interval_usec, 100 * 1000, on_health_timer,
			      m);
	if (r >= 0)
		(void)sd_event_source_set_description(m->health_source, "health-probe");
	return r;
}

/* Cordons and repartitions tell the event streams and the journal (the journal entry is the
 * repartitioner's). */
static void on_repartition_news(const struct repartition_news *n, void *userdata)
{
	struct manager *m = userdata;

	if (m->api)
		api_broadcast_repartition(m->api, n);
	metrics_changed(m->metrics);
}

static int rescan_hook(void *userdata)
{
	return manager_rescan(userdata, NULL);
}

static int on_plan_step(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;

	m->plan_generation = inventory_generation(m->inventory);
	repartitioner_step(m->repartitioner);
	return 0;
}

/*
 * After every dispatch: a new plan (rescan, reload, release) may move a repartition on, or need
 * one (a layout to make). The step runs as a dispatch of its own, not here: what it changes
 * (a new plan) must reach the other post sources (device plugin, CDI) in the next iteration,
 * which an enabled defer source starts without waiting for an outside event.
 */
static int on_plan_post(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;

	if (inventory_generation(m->inventory) != m->plan_generation)
		(void)sd_event_source_set_enabled(m->plan_step, SD_EVENT_ONESHOT);
	return 0;
}

static int resolve_group(const char *name, gid_t *ret)
{
	char buf[16384];
	struct group grp, *res = NULL;
	int r;

	r = getgrnam_r(name, &grp, buf, sizeof(buf), &res);
	if (r != 0)
		return -r;
	if (!res)
		return -ESRCH;
	*ret = grp.gr_gid;
	return 0;
}

static int load_config(struct manager *m, struct config *c, char **ret_error)
{
	_cleanup_free_ char *err = NULL;
	int r;

	config_init_sections(c, registry_config_sections);
	if (!m->config_path)
		return 0;
	r = config_load(m->config_path, c, &err);
	if (r == -ENOENT && !m->config_explicit)
		return 0;
	if (r < 0) {
		config_done(c);
		if (ret_error && asprintf(ret_error, "%s", err ?: strerror(-r)) < 0)
			*ret_error = NULL;
		if (err)
			return log_error_errno(r, "Invalid configuration: %s", err);
		return log_error_errno(r, "Failed to read configuration %s: %m", m->config_path);
	}
	STRV_FOREACH(w, c->warnings)
		log_warning("%s", *w);
	return 0;
}

static void apply_config(struct manager *m)
{
	gid_t gid = 0; /* set before use; the analyzer cannot tell getgrnam_r() returns >= 0 */
	int r;

	if (m->cli_log_level >= 0)
		log_set_max_level(m->cli_log_level);
	else
		log_set_max_level(m->config.log_level >= 0 ? m->config.log_level : LOG_INFO);

	if (m->api) {
		if (!m->config.admin_group)
			api_set_admin_gid(m->api, false, 0);
		else if ((r = resolve_group(m->config.admin_group, &gid)) < 0) {
			log_warning_errno(r, "Admin group '%s' cannot be resolved (%s), only root "
					     "may change state.",
					  m->config.admin_group,
					  r == -ESRCH ? "no such group" : strerror(-r));
			api_set_admin_gid(m->api, false, 0);
		} else
			api_set_admin_gid(m->api, true, gid);
	}
}

/*
 * Reads the configuration again and applies it; the partition policy takes effect through a
 * rescan (each device whose slices are in use keeps its offer until it is idle). With an
 * invalid file the running configuration stays and the error goes to *ret_error.
 */
static int manager_reload(void *userdata, char **ret_error)
{
	struct manager *m = userdata;
	struct config c;
	int r;

	(void)sd_notify(false, "RELOADING=1");
	r = load_config(m, &c, ret_error);
	if (r >= 0) {
		if (!m->socket_fixed &&
		    !streq(c.socket_path ?: XPU_DEFAULT_SOCKET, m->socket_path))
			log_notice("The configuration names socket %s, xpud serves on %s until it "
				   "restarts.",
				   c.socket_path ?: XPU_DEFAULT_SOCKET, m->socket_path);
		/* "metrics:" is read at start: the backends go on reading samples for the
		 * listener that runs, at its interval (docs/metrics.md) */
		struct config_metrics running = m->config.metrics;

		m->config.metrics = c.metrics;
		c.metrics = running;
		config_done(&m->config);
		m->config = c;
		apply_config(m);
		r = arm_health_timer(m);
		if (r < 0)
			log_warning_errno(r, "Failed to re-arm the health timer, ignoring: %m");
		log_info("Configuration reloaded.");
		/* a new policy: what failed before may be asked differently, or work now */
		plan_attempts_clear(&m->attempts);
		repartitioner_set_timeout(m->repartitioner, m->config.repartition_timeout_usec);
		repartitioner_policy_changed(m->repartitioner);
		if (m->metrics &&
		    (r = metrics_set_shapes(m->metrics, m->config.shapes.items,
					    m->config.shapes.n)) < 0)
			log_warning_errno(r, "Failed to take the new shapes, ignoring: %m");
		r = manager_rescan(m, NULL);
		if (r < 0)
			log_warning_errno(r, "Failed to rescan after the reload: %m");
		r = 0;
	} else {
		log_warning("Keeping the previous configuration.");
		schedule_rescan(m);
	}
	(void)sd_notify(false, "READY=1");
	return r;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void)manager_reload(userdata, NULL);
	return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct manager *m = userdata;

	log_info("Received %s, shutting down.", strsignal((int)si->ssi_signo));
	(void)sd_notify(false, "STOPPING=1");
	return sd_event_exit(m->event, 0);
}

/* Replaces *path with the file system path @fd is bound to ("@name" for abstract sockets). */
static int socket_path_of(int fd, char **path)
{
	struct sockaddr_un sun = {};
	socklen_t len = sizeof(sun);
	size_t n;
	char *s;

	if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0)
		return -errno;
	if (len <= offsetof(struct sockaddr_un, sun_path))
		return -EINVAL;
	n = len - offsetof(struct sockaddr_un, sun_path);
	if (sun.sun_path[0] == '\0') { /* abstract */
		sun.sun_path[0] = '@';
		s = strndup(sun.sun_path, n);
	} else {
		s = strndup(sun.sun_path, strnlen(sun.sun_path, n));
	}
	if (!s)
		return -ENOMEM;
	free(*path);
	*path = s;
	return 0;
}

/* The listening socket systemd passed: 1 and the descriptor in *ret_fd, or 0 when none. */
static int passed_socket(struct manager *m, int *ret_fd)
{
	int fd = SD_LISTEN_FDS_START, r, n;

	n = sd_listen_fds(true);
	if (n < 0)
		return log_error_errno(n, "Failed to read the sockets systemd passed: %m");
	if (n > 1)
		return log_error_errno(EINVAL, "Expected one socket from systemd, got %d.", n);
	if (n == 0)
		return 0;
	r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
	if (r <= 0)
		return log_error_errno(r < 0 ? r : EINVAL,
				       "The socket systemd passed is not a listening Unix stream "
				       "socket.");
	m->socket_activated = true;
	m->socket_fixed = true;
	r = socket_path_of(fd, &m->socket_path);
	if (r < 0)
		return log_error_errno(r, "Failed to read the address of the passed socket: %m");
	r = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (r < 0)
		return log_error_errno(errno, "Failed to make the socket non-blocking: %m");
	log_debug("Using the socket passed by systemd.");
	*ret_fd = fd;
	return 1;
}

/* "Another xpud (PID 123)" or "Another process" when the holder cannot be told. */
static const char *holder_text(pid_t pid, char *buf, size_t size)
{
	if (pid > 0)
		snprintf(buf, size, "Another xpud (PID %d)", (int)pid);
	else
		snprintf(buf, size, "Another xpud (PID unknown)");
	return buf;
}

/* One xpud per socket path: <socket>.lock decides (the connect in bind_socket() catches
 * foreign listeners). */
static int lock_socket(struct manager *m)
{
	_cleanup_free_ char *lock_path = NULL;
	char who[64];
	pid_t holder = 0;
	int r;

	r = mkdir_parents(m->socket_path, 0755);
	if (r < 0)
		return log_error_errno(r, "Failed to create the directory of %s: %m",
				       m->socket_path);
	if (asprintf(&lock_path, "%s.lock", m->socket_path) < 0)
		return log_oom();
	r = lockfile_take(lock_path, LOCKFILE_CREATE, &holder);
	if (r == -EBUSY)
		return log_error_errno(EADDRINUSE,
				       "%s is already serving on %s (%s is locked); refusing to "
				       "start.",
				       holder_text(holder, who, sizeof(who)), m->socket_path,
				       lock_path);
	if (r < 0)
		return log_error_errno(r, "Failed to lock %s: %m", lock_path);
	m->lock_fd = r;
	return 0;
}

/*
 * One xpud per state directory: two would grant the same slices and overwrite each other's
 * state.json. The lock is a file in the directory (created 0700 if missing, like state_save()).
 */
static int lock_state_dir(struct manager *m)
{
	_cleanup_free_ char *lock_path = NULL;
	char who[64];
	pid_t holder = 0;
	int r;

	r = mkdir_parents(m->state_dir, 0755);
	if (r >= 0)
		r = mkdir_mode(m->state_dir, 0700);
	if (r < 0)
		return log_error_errno(r, "Failed to create the state directory %s: %m",
				       m->state_dir);
	if (asprintf(&lock_path, "%s/" STATE_LOCK_FILE, m->state_dir) < 0)
		return log_oom();
	r = lockfile_take(lock_path, LOCKFILE_CREATE, &holder);
	if (r == -EBUSY)
		return log_error_errno(EBUSY,
				       "%s uses the state directory %s; refusing to start. A second "
				       "instance needs its own --state-dir (and --kubelet-dir).",
				       holder_text(holder, who, sizeof(who)), m->state_dir);
	if (r < 0)
		return log_error_errno(r, "Failed to lock %s: %m", lock_path);
	m->state_lock_fd = r;
	return 0;
}

/*
 * One xpud per kubelet: a second one would replace the first's plugin sockets and register the
 * same devices again. kubelet owns the directory's files, so the directory itself is locked.
 * No directory: the device plugin is off and nothing is locked.
 */
static int lock_kubelet_dir(struct manager *m)
{
	char who[64];
	pid_t holder = 0;
	struct stat st;
	int r;

	if (stat(m->kubelet_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	r = lockfile_take(m->kubelet_dir, 0, &holder);
	if (r == -EBUSY)
		return log_error_errno(EBUSY,
				       "%s serves the kubelet device plugin in %s; refusing to "
				       "start. A second instance needs its own --kubelet-dir (and "
				       "--state-dir).",
				       holder_text(holder, who, sizeof(who)), m->kubelet_dir);
	if (r < 0)
		return log_error_errno(r, "Failed to lock %s: %m", m->kubelet_dir);
	m->kubelet_lock_fd = r;
	return 0;
}

/*
 * What is at the socket path: 0 nothing, 1 a stale socket (nobody listens: replace it); any
 * other file, or a socket that somebody serves, is refused (-EEXIST/-EADDRINUSE, logged).
 */
static int stale_socket(const char *path, const struct sockaddr_un *sun)
{
	_cleanup_close_ int probe = -EBADF;
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return log_error_errno(errno, "Failed to look at %s: %m", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return log_error_errno(EEXIST,
				       "%s exists and is not a socket; refusing to replace it. "
				       "Remove it or choose another --socket.",
				       path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return log_error_errno(errno, "Failed to create a socket: %m");
	if (connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
		return log_error_errno(EADDRINUSE,
				       "Something is already listening on %s; refusing to start.",
				       path);
	/* only a refused connection proves nobody serves it (a full backlog is EAGAIN) */
	if (errno != ECONNREFUSED)
		return log_error_errno(EADDRINUSE,
				       "Cannot tell whether something serves %s (%m); refusing to "
				       "replace it.",
				       path);
	return 1;
}

/* Binds the socket path, whose lock lock_socket() took; only a stale socket is replaced. */
static int bind_socket(struct manager *m)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;
	gid_t gid = 0; /* set before use; the analyzer cannot tell getgrnam_r() returns >= 0 */
	int r;

	if (strlen(m->socket_path) >= sizeof(sun.sun_path))
		return log_error_errno(ENAMETOOLONG, "Socket path %s is too long.", m->socket_path);
	strcpy(sun.sun_path, m->socket_path);
	r = stale_socket(m->socket_path, &sun);
	if (r < 0)
		return r;
	if (r > 0 && unlink(m->socket_path) < 0 && errno != ENOENT)
		return log_error_errno(errno, "Failed to remove the stale socket %s: %m",
				       m->socket_path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(errno, "Failed to create a socket: %m");
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return log_error_errno(errno, "Failed to bind %s: %m", m->socket_path);
	m->socket_owned = true;
	if (chmod(m->socket_path, m->config.socket_mode) < 0)
		return log_error_errno(errno, "Failed to set the mode of %s: %m", m->socket_path);
	if (m->config.socket_group) {
		r = resolve_group(m->config.socket_group, &gid);
		if (r == -ESRCH)
			return log_error_errno(r, "Socket group '%s' does not exist.",
					       m->config.socket_group);
		if (r < 0)
			return log_error_errno(r, "Failed to look up socket group '%s': %m",
					       m->config.socket_group);
		if (chown(m->socket_path, (uid_t)-1, gid) < 0)
			return log_error_errno(errno, "Failed to give %s to group %s: %m",
					       m->socket_path, m->config.socket_group);
	}
	if (listen(fd, 128) < 0)
		return log_error_errno(errno, "Failed to listen on %s: %m", m->socket_path);
	return TAKE_FD(fd);
}

/* The Prometheus listener, when the configuration names one (docs/metrics.md). */
static int start_metrics(struct manager *m)
{
	const char *listen = m->config.metrics.listen;
	struct listen_address a;
	int fd, r;

	if (!listen)
		return 0;
	r = listen_address_parse(listen, &a);
	if (r < 0)
		return log_error_errno(r, "Invalid metrics listen address '%s'.", listen);
	r = metrics_new(m->event,
			&(struct metrics_context){ .inventory = m->inventory,
						   .registry = m->registry,
						   .allocations = m->allocations,
						   .interval_usec = m->config.metrics.interval_usec,
						   .shapes = m->config.shapes.items,
						   .n_shapes = m->config.shapes.n },
			&m->metrics);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the metrics: %m");
	/* the page is for anyone on the host, as a TCP port on the loopback would be */
	fd = listen_address_open(&a, 0666);
	if (fd < 0)
		return log_error_errno(fd, "Failed to listen for metrics on %s: %m", listen);
	r = metrics_serve(m->metrics, fd, NULL);
	if (r < 0)
		return log_error_errno(r, "Failed to serve the metrics on %s: %m", listen);
	log_info("Serving metrics on %s.", listen);
	return 0;
}

static int setup_signals(struct manager *m)
{
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	r = sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
	return r;
}

int manager_new(const struct manager_options *o, struct manager **ret)
{
	_cleanup_(manager_freep) struct manager *m = NULL;
	struct api_context ctx;
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	int fd = -EBADF, r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return log_oom();
	m->lock_fd = -EBADF;
	m->state_lock_fd = -EBADF;
	m->kubelet_lock_fd = -EBADF;
	m->listen_fd = -EBADF;
	m->cli_log_level = o->log_level;
	config_init(&m->config);
	/* Without --config the default file is optional, also at a reload: it may appear later. */
	m->config_path = strdup(o->config_path ?: CONFIG_DEFAULT_PATH);
	if (!m->config_path)
		return log_oom();
	m->config_explicit = o->config_explicit;
	r = load_config(m, &m->config, NULL);
	if (r < 0)
		return r;
	apply_config(m);

	m->socket_path = strdup(o->socket_path ?: m->config.socket_path ?: XPU_DEFAULT_SOCKET);
	if (!m->socket_path)
		return log_oom();
	m->socket_fixed = o->socket_path;

	r = sd_event_default(&m->event);
	if (r < 0)
		return log_error_errno(r, "Failed to create the event loop: %m");
	r = setup_signals(m);
	if (r < 0)
		return log_error_errno(r, "Failed to set up signal handling: %m");
	(void)sd_event_set_watchdog(m->event, true);

	r = host_open(o->root, &m->host);
	if (r < 0)
		return log_error_errno(r, "Failed to open the host root %s: %m",
				       o->root ?: "/");
	m->state_dir = host_dir(m, o->state_dir, NULL, STATE_DEFAULT_DIR);
	m->kubelet_dir = host_dir(m, o->kubelet_dir, m->config.kubelet_dir,
				  DEVICEPLUGIN_DEFAULT_DIR);
	if (!m->state_dir || !m->kubelet_dir)
		return log_oom();

	/*
	 * The locks first: a second xpud must stop before it touches anything the first one
	 * owns (its socket, its state, its kubelet registration), whichever of them it shares.
	 */
	r = passed_socket(m, &fd);
	if (r < 0)
		return r;
	if (r == 0) {
		r = lock_socket(m);
		if (r < 0)
			return r;
	}
	r = lock_state_dir(m);
	if (r < 0)
		return r;
	r = lock_kubelet_dir(m);
	if (r < 0)
		return r;
	if (!m->socket_activated) {
		fd = bind_socket(m);
		if (fd < 0)
			return fd;
	}
	m->listen_fd = fd;

	r = registry_new(m->host, &m->config, registry_builtin_ops, registry_builtin_n, &m->registry);
	if (r < 0)
		return log_oom();
	r = inventory_new(&m->inventory);
	if (r < 0)
		return log_oom();
	inventory_set_listener(m->inventory, on_inventory_event, m);
	inventory_set_health_policy(m->inventory, &m->config.health);

	/* Allocations before the first inventory: it is planned around the slices in use. */
	r = allocations_new(m->event, m->host, m->state_dir, m->inventory, &m->config.policy,
			    &m->allocations);
	if (r < 0)
		return r;

	r = enforcer_new(m->host,
			 &(struct enforce_settings){ .cgroup_root = m->config.enforce.cgroup_root,
						     .devices_v1_root =
							     m->config.enforce.devices_v1_root,
						     .devices = m->config.enforce.devices,
						     .state_dir = m->state_dir },
			 m->inventory, &m->enforcer);
	if (r < 0)
		return r;
	(void)enforcer_observe(m->enforcer, m->allocations);

	r = sd_event_add_defer(m->event, &m->rescan_source, on_rescan, m);
	if (r < 0)
		return log_error_errno(r, "Failed to set up rescans: %m");
	(void)sd_event_source_set_enabled(m->rescan_source, SD_EVENT_OFF);
	(void)sd_event_source_set_description(m->rescan_source, "rescan");

	r = recovery_new(m->event,
			 &(struct recovery_context){ .inventory = m->inventory,
						     .registry = m->registry,
						     .allocations = m->allocations,
						     .config = &m->config,
						     .rescan = request_rescan,
						     .userdata = m },
			 &m->recovery);
	if (r < 0)
		return log_error_errno(r, "Failed to set up resets of idle devices: %m");

	/* Layouts are made, and repartitions moved on, after each new plan, from the loop. */
	inventory_set_attempts(m->inventory, &m->attempts);
	r = repartitioner_new(m->event, m->registry, m->inventory, m->allocations,
			      &m->config.policy, &m->attempts,
			      &(struct repartition_hooks){ .rescan = rescan_hook,
							   .news = on_repartition_news,
							   .userdata = m },
			      &m->repartitioner);
	if (r < 0)
		return log_oom();
	repartitioner_set_timeout(m->repartitioner, m->config.repartition_timeout_usec);
	r = sd_event_add_post(m->event, &m->plan_post, on_plan_post, m);
	if (r >= 0)
		r = sd_event_add_defer(m->event, &m->plan_step, on_plan_step, m);
	if (r < 0)
		return log_error_errno(r, "Failed to set up repartitions: %m");
	(void)sd_event_source_set_enabled(m->plan_step, SD_EVENT_OFF);
	(void)sd_event_source_set_description(m->plan_step, "repartition-step");

	/* Uevents first, inventory second: a device added in between is not lost. */
	if (m->host->is_real && !o->uevent_socket) {
		r = uevent_monitor_new(m->event, NULL, on_uevent, m, &m->uevents);
	} else {
		if (o->uevent_socket)
			m->uevent_socket = strdup(o->uevent_socket);
		else if (asprintf(&m->uevent_socket, "%s/run/xpud-uevent.sock", m->host->root) < 0)
			m->uevent_socket = NULL;
		if (!m->uevent_socket)
			return log_oom();
		(void)mkdir_parents(m->uevent_socket, 0755);
		r = uevent_monitor_new(m->event, m->uevent_socket, on_uevent, m, &m->uevents);
	}
	if (r < 0)
		log_warning_errno(r, "Failed to listen for uevents, hot-plug is seen only on "
				     "rescan (xpuctl rescan): %m");

	r = manager_rescan(m, NULL);
	if (r < 0)
		return log_error_errno(r, "Failed to build the first inventory: %m");

	ctx = (struct api_context){
		.inventory = m->inventory,
		.registry = m->registry,
		.root = m->host->root,
		.rescan = manager_rescan,
		.reload = manager_reload,
		.allocations = m->allocations,
		.repartitioner = m->repartitioner,
		.enforcer = m->enforcer,
		.userdata = m,
	};
	r = api_new(&ctx, &m->api);
	if (r < 0)
		return log_oom();
	apply_config(m);

	r = http_server_new(m->event, TAKE_FD(m->listen_fd), &limits, api_handle, m->api,
			    &m->server);
	if (r < 0)
		return log_error_errno(r, "Failed to serve the API: %m");
	http_server_set_privileged(m->server, api_peer_privileged, m->api);

	r = start_metrics(m);
	if (r < 0)
		return r;

	r = start_deviceplugin(m);
	if (r < 0)
		log_warning_errno(r, "The kubelet device plugin is off, ignoring: %m");
	r = start_kube_files(m, o);
	if (r < 0)
		log_warning_errno(r, "CDI specs or node labels are off, ignoring: %m");

	r = arm_health_timer(m);
	if (r < 0)
		return log_error_errno(r, "Failed to arm the health timer: %m");
	registry_set_event(m->registry, m->event);
	r = watch_backends(m);
	if (r < 0)
		return log_error_errno(r, "Failed to watch the backends' events: %m");
	r = start_kmsg(m);
	if (r < 0)
		return log_error_errno(r, "Failed to read the kernel log: %m");

	*ret = TAKE_PTR(m);
	return 0;
}

int manager_run(struct manager *m)
{
	const struct device_list *l = inventory_devices(m->inventory);
	int r;

	log_info("xpud " XPU_VERSION " ready: %zu accelerator%s on %s, serving on %s.", l->n,
		 l->n == 1 ? "" : "s", m->host->root, m->socket_path);
	(void)sd_notify(false, "READY=1");
	update_status(m);
	r = sd_event_loop(m->event);
	if (r < 0)
		return log_error_errno(r, "Event loop failed: %m");
	return 0;
}

struct manager *manager_free(struct manager *m)
{
	if (!m)
		return NULL;
	m->plugin = deviceplugin_free(m->plugin);
	m->cdi = cdi_writer_free(m->cdi);
	m->nfd = nfd_writer_free(m->nfd);
	m->recovery = recovery_free(m->recovery);
	m->api = api_free(m->api);
	m->server = http_server_free(m->server);
	m->metrics = metrics_free(m->metrics);
	if (m->socket_owned)
		(void)unlink(m->socket_path);
	safe_close(m->listen_fd);
	safe_close(m->lock_fd);
	uevent_monitor_free(m->uevents);
	sd_event_source_disable_unref(m->rescan_source);
	sd_event_source_disable_unref(m->health_source);
	sd_event_source_disable_unref(m->plan_post);
	sd_event_source_disable_unref(m->plan_step);
	m->repartitioner = repartitioner_free(m->repartitioner);
	for (size_t i = 0; m->watches && i < registry_size(m->registry); i++)
		sd_event_source_disable_unref(m->watches[i].source);
	m->kmsg = kmsg_reader_free(m->kmsg);
	free(m->watches);
	m->enforcer = enforcer_free(m->enforcer);
	allocations_free(m->allocations);
	inventory_free(m->inventory);
	plan_attempts_clear(&m->attempts);
	registry_free(m->registry);
	host_free(m->host);
	sd_event_unref(m->event);
	config_done(&m->config);
	free(m->config_path);
	free(m->socket_path);
	free(m->uevent_socket);
	free(m->state_dir);
	free(m->kubelet_dir);
	/* last: until everything above is torn down, a second xpud must not start */
	safe_close(m->kubelet_lock_fd);
	safe_close(m->state_lock_fd);
	free(m);
	return NULL;
}
