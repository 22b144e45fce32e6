// SPDX-License-Identifier: GPL-2.0-or-later
/* Accepting connections without spinning when out of descriptors; see accept.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "shared/accept.h"
#include "shared/clock.h"
#include "shared/log.h"

#define ACCEPTOR_TIMER_ACCURACY_USEC (1U * 1000U)

struct acceptor {
	sd_event *event;
	int fd;
	unsigned burst;
	sd_event_source *listen_source;
	sd_event_source *retry_source; /* switches accepting on again after a pause */
	acceptor_handler_t cb;
	void *userdata;
	uint64_t n_pauses;
};

/* accept4() errors that concern one connection only (see accept(2)): take the next one. */
static bool accept_errno_is_transient(int e)
{
	switch (e) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case ENETDOWN:
	case ENETUNREACH:
	case EHOSTDOWN:
	case EHOSTUNREACH:
	case ENONET:
	case ENOPROTOOPT:
	case EOPNOTSUPP:
		return true;
	default:
		return false;
	}
}

static int acceptor_retry_handler(sd_event_source *source, uint64_t usec, void *userdata)
{
	struct acceptor *a = userdata;

	(void)sd_event_source_set_enabled(a->listen_source, SD_EVENT_ON);
	return 0;
}

static void acceptor_pause(struct acceptor *a)
{
	uint64_t now, when;
	int r;

	if (sd_event_now(a->event, CLOCK_MONOTONIC, &now) < 0)
		now = now_usec(CLOCK_MONOTONIC);
	when = now + ACCEPTOR_RETRY_USEC;
	if (a->retry_source) {
		r = sd_event_source_set_time(a->retry_source, when);
		if (r >= 0)
			r = sd_event_source_set_enabled(a->retry_source, SD_EVENT_ONESHOT);
	} else {
		r = sd_event_add_time(a->event, &a->retry_source, CLOCK_MONOTONIC, when,
				      ACCEPTOR_TIMER_ACCURACY_USEC, acceptor_retry_handler, a);
	}
	if (r < 0) {
		/* Without a timer we could never switch it on again: rather keep accepting. */
		log_debug_errno(r, "Failed to arm the accept retry timer, ignoring: %m");
		return;
	}
	a->n_pauses++;
	(void)sd_event_source_set_enabled(a->listen_source, SD_EVENT_OFF);
}

static int acceptor_listen_handler(sd_event_source *source, int fd, uint32_t revents,
				   void *userdata)
{
	struct acceptor *a = userdata;

	for (unsigned i = 0; i < a->burst; i++) {
		int cfd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (accept_errno_is_transient(errno))
				continue;
			log_debug_errno(errno, "Failed to accept a connection, pausing for %u ms: %m",
					ACCEPTOR_RETRY_USEC / 1000U);
			acceptor_pause(a);
			break;
		}
		a->cb(cfd, a->userdata);
	}
	return 0;
}

int acceptor_new(sd_event *e, int fd, unsigned burst, const char *description,
		 acceptor_handler_t cb, void *userdata, struct acceptor **ret)
{
	_cleanup_(acceptor_freep) struct acceptor *a = NULL;
	int flags, r;

	if (!e || fd < 0 || burst == 0 || !cb || !ret)
		return -EINVAL;

	/* accept4() must never block, even when a readable connection was reset meanwhile. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->event = sd_event_ref(e);
	a->fd = fd;
	a->burst = burst;
	a->cb = cb;
	a->userdata = userdata;
	r = sd_event_add_io(e, &a->listen_source, fd, EPOLLIN, acceptor_listen_handler, a);
	if (r < 0)
		return r;
	if (description)
		(void)sd_event_source_set_description(a->listen_source, description);
	*ret = TAKE_PTR(a);
	return 0;
}

struct acceptor *acceptor_free(struct acceptor *a)
{
	if (!a)
		return NULL;
	a->listen_source = sd_event_source_disable_unref(a->listen_source);
	a->retry_source = sd_event_source_disable_unref(a->retry_source);
	a->event = sd_event_unref(a->event);
	free(a);
	return NULL;
}

uint64_t acceptor_n_pauses(const struct acceptor *a)
{
	return a ? a->n_pauses : 0;
}
