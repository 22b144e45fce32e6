// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend's health events: a thread blocked in nvmlEventSetWait_v2 (the loop never
 * is) hands each event to the loop through a pipe, the backend's watch fd; the loop's dispatch
 * reads them and says what each means: an XID by the action table (nvidia-xid.c), a double-bit
 * ECC error, a MIG configuration change. The CUDA probe's thread (nvidia-cuda.c) says it is
 * done through the same pipe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/nvidia-internal.h"
#include "backends/nvidia-xid.h"
#include "shared/log.h"

#define NVML_EVENTS_WANTED                                                                         \
	(nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError | nvmlEventMigConfigChange)
#define NVML_EVENT_WAIT_MS 500

/* Registers a GPU that answered for the events we act on (once per handle). */
void nvidia_register_events(struct nvidia *nv, unsigned index, const char *addr)
{
	unsigned long long supported = 0;
	nvmlDevice_t h;
	nvmlReturn_t r;

	if (!nv->have_set || nv->api.handle(index, &h) != NVML_SUCCESS)
		return;
	pthread_mutex_lock(&nv->map_lock);
	for (size_t i = 0; i < nv->n_registered; i++)
		if (nv->registered[i].handle == h) {
			memcpy(nv->registered[i].addr, addr, 13);
			pthread_mutex_unlock(&nv->map_lock);
			return;
		}
	pthread_mutex_unlock(&nv->map_lock);
	if (nv->api.event_types(h, &supported) != NVML_SUCCESS)
		return; /* a GPU without events: probed only */
	r = nv->api.event_register(h, supported & NVML_EVENTS_WANTED, nv->set);
	if (r != NVML_SUCCESS) {
		log_device_full_errno(LOG_WARNING, nvml_to_errno(r), addr, addr,
				      "Cannot register NVML events of %s (%s), it is probed only.",
				      addr, nvml_error(&nv->api, r));
		return;
	}
	pthread_mutex_lock(&nv->map_lock);
	if (nv->n_registered < NVML_MAX_GPUS) {
		nv->registered[nv->n_registered].handle = h;
		memcpy(nv->registered[nv->n_registered++].addr, addr, 13);
	}
	pthread_mutex_unlock(&nv->map_lock);
}

void nvidia_event_send(struct nvidia *nv, const struct nvidia_event *ev)
{
	/* A full pipe drops the event: the loop is far behind and a rescan or probe follows. */
	(void)!write(nv->pipe[1], ev, sizeof(*ev));
}

/* Blocks in nvmlEventSetWait_v2, so the loop never does; hands each event over the pipe. */
static void *event_thread(void *userdata)
{
	struct nvidia *nv = userdata;
	bool failing = false;

	while (!atomic_load(&nv->stop)) {
		struct nvidia_event ev = {};
		nvmlEventData_t data = {};
		nvmlReturn_t r;

		r = nv->api.event_wait(nv->set, &data, NVML_EVENT_WAIT_MS);
		if (r == NVML_ERROR_TIMEOUT || r == NVML_SUCCESS) {
			if (failing) {
				failing = false;
				ev.recovered = true;
				nvidia_event_send(nv, &ev);
				ev.recovered = false;
			}
			if (r == NVML_ERROR_TIMEOUT)
				continue;
		} else {
			if (!failing) {
				failing = true;
				ev.error = r;
				nvidia_event_send(nv, &ev);
			}
			/* no busy loop while the driver is in trouble */
			struct timespec ts = { 1, 0 };

			nanosleep(&ts, NULL);
			continue;
		}
		pthread_mutex_lock(&nv->map_lock);
		for (size_t i = 0; i < nv->n_registered; i++)
			if (nv->registered[i].handle == data.device)
				memcpy(ev.addr, nv->registered[i].addr, 13);
		pthread_mutex_unlock(&nv->map_lock);
		ev.type = data.eventType;
		ev.data = data.eventData;
		ev.gi = data.gpuInstanceId;
		ev.ci = data.computeInstanceId;
		nvidia_event_send(nv, &ev);
	}
	return NULL;
}

int nvidia_watch(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;

	if (nv->pipe[0] < 0)
		return -EOPNOTSUPP;
	/* After the first inventory, so READY never waits for cuInit. */
	if (nv->cuda_path && !nv->cuda_thread_started &&
	    pthread_create(&nv->cuda_thread, NULL, nvidia_cuda_thread, nv) == 0)
		nv->cuda_thread_started = true;
	if (nv->have_set && !nv->event_thread_started &&
	    pthread_create(&nv->event_thread, NULL, event_thread, nv) == 0)
		nv->event_thread_started = true;
	return nv->event_thread_started || nv->cuda_thread_started ? nv->pipe[0] : -EOPNOTSUPP;
}

static int update_push(struct backend_update **u, size_t *n, const char *addr, const char *reason,
		       enum health_action action)
{
	struct backend_update *m = realloc(*u, (*n + 1) * sizeof(*m));

	if (!m)
		return -ENOMEM;
	*u = m;
	m[*n] = (struct backend_update){ .id = strdup(addr),
					 .health = { XPU_HEALTH_UNHEALTHY, strdup(reason),
						     action } };
	if (!m[*n].id || !m[*n].health.reason) {
		free(m[*n].id);
		free(m[*n].health.reason);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* What one event means: log it, and make its GPU unhealthy when it needs a reset or more. */
static int handle_event(struct xpu_backend *b, const struct nvidia_event *ev,
			struct backend_update **u, size_t *n, bool *rescan)
{
	struct nvidia *nv = b->userdata;
	char reason[192], scope[64] = "";
	enum health_action a;
	const char *what;

	if (ev->error) {
		free(b->reason);
		b->reason = NULL;
		if (asprintf(&b->reason, "degraded: waiting for NVML events failed: %s",
			     nvml_error(&nv->api, ev->error)) < 0)
			b->reason = NULL;
		log_warning("Waiting for NVML events failed (%s): GPU health events are not seen "
			    "until it works again; the GPUs are still probed.",
			    nvml_error(&nv->api, ev->error));
		return 0;
	}
	if (ev->recovered) {
		b->reason = mfree(b->reason);
		log_notice("NVML events are delivered again.");
		return 0;
	}
	if (ev->cuda_done) {
		if (nv->cuda_error)
			log_info("The CUDA driver API adds nothing: %s.", nv->cuda_error);
		else
			log_info("CUDA driver API: %zu GPUs (cuInit took %ld ms in a helper "
				 "process, after READY).",
				 nv->n_cuda, nv->cuda_init_ms);
		*rescan = true; /* merge its facts */
		return 0;
	}
	if (ev->type & nvmlEventMigConfigChange) {
		*rescan = true; /* instances came or went: re-read them */
		return 0;
	}
	if (!ev->addr[0])
		return 0; /* a GPU we never registered */
	if (ev->gi != 0xFFFFFFFFu && ev->type & nvmlEventTypeXidCriticalError)
		snprintf(scope, sizeof(scope), " in GPU instance %u, compute instance %u", ev->gi,
			 ev->ci);
	if (ev->type & nvmlEventTypeDoubleBitEccError) {
		a = HEALTH_ACTION_RESET_DEVICE;
		snprintf(reason, sizeof(reason), "double-bit ECC error: %s",
			 health_action_to_string(a));
	} else if (ev->type & nvmlEventTypeXidCriticalError) {
		a = nvidia_xid_action((unsigned)ev->data, b->config, &what);
		snprintf(reason, sizeof(reason), "XID %llu (%s)%s: %s", ev->data, what, scope,
			 health_action_to_string(a));
	} else {
		return 0;
	}
	if (a < HEALTH_ACTION_RESET_DEVICE) {
		log_device_full_errno(LOG_INFO, 0, ev->addr, ev->addr,
				      "GPU %s: %s; the GPU stays healthy.", ev->addr, reason);
		return 0;
	}
	if (ev->gi != 0xFFFFFFFFu && (ev->type & nvmlEventTypeXidCriticalError)) {
		const char *mig = nvidia_mig_uuid_of(nv, ev->addr, ev->gi, ev->ci);

		if (mig) {
			/* one instance's fault: its slice, not the GPU and its other instances */
			log_device_full_errno(LOG_WARNING, 0, ev->addr, ev->addr,
					      "GPU %s, MIG device %s: %s.", ev->addr, mig, reason);
			if (nvidia_sticky_add(nv, ev->addr, mig, reason, a) < 0)
				return -ENOMEM;
			*rescan = true;
			return 0;
		}
	}
	log_device_full_errno(LOG_WARNING, 0, ev->addr, ev->addr, "GPU %s: %s.", ev->addr,
			      reason);
	if (nvidia_sticky_add(nv, ev->addr, NULL, reason, a) < 0)
		return -ENOMEM;
	return update_push(u, n, ev->addr, nvidia_sticky_reason(nv, ev->addr),
			   nvidia_sticky_action(nv, ev->addr));
}

static bool event_equal(const struct nvidia_event *a, const struct nvidia_event *b)
{
	return streq(a->addr, b->addr) && a->error == b->error && a->recovered == b->recovered &&
	       a->type == b->type && a->data == b->data && a->gi == b->gi && a->ci == b->ci;
}

int nvidia_dispatch(struct xpu_backend *b, struct backend_update **ret_updates, size_t *ret_n,
		    bool *ret_rescan)
{
	struct nvidia *nv = b->userdata;
	struct backend_update *u = NULL;
	struct nvidia_event ev, prev = {};
	bool rescan = false;
	size_t n = 0;
	int r = 0;
	unsigned repeats = 0;

	/* Bounded: a storm is drained a pipe-full at a time, the loop gets its turn between.
	 * Repeats of one event (an XID storm) are counted, not handled and logged one by one. */
	for (int i = 0; i < 1024; i++) {
		ssize_t k = read(nv->pipe[0], &ev, sizeof(ev));

		if (k != (ssize_t)sizeof(ev))
			break;
		if (i > 0 && event_equal(&ev, &prev)) {
			repeats++;
			continue;
		}
		if (repeats)
			log_device_full_errno(LOG_INFO, 0, prev.addr, prev.addr,
					      "The last event of GPU %s repeated %u times.",
					      prev.addr, repeats);
		repeats = 0;
		prev = ev;
		r = handle_event(b, &ev, &u, &n, &rescan);
		if (r < 0)
			break;
	}
	if (repeats)
		log_device_full_errno(LOG_INFO, 0, prev.addr, prev.addr,
				      "The last event of GPU %s repeated %u times.", prev.addr,
				      repeats);
	if (r < 0) {
		backend_updates_free(u, n);
		return r;
	}
	*ret_updates = u;
	*ret_n = n;
	*ret_rescan = rescan;
	return 0;
}
