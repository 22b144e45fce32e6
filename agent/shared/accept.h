/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Accepting connections on a listening socket from sd-event, for every server of xpud (the
 * local API and the kubelet gRPC servers).
 *
 * A listening socket stays readable while a connection waits in its backlog, and sd-event's
 * I/O sources are level-triggered: an accept4() that fails because the process or the system is
 * out of something (EMFILE, ENFILE, ENOBUFS, ENOMEM) would have the loop call us again at once,
 * for as long as the shortage lasts, at 100% of a core. So the listener is switched off on such
 * a failure and a timer switches it on again after a short pause; the connection waits in the
 * backlog meanwhile and is served once descriptors are free again. Errors that concern one
 * connection only (it was reset before we took it, say) are skipped.
 */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "shared/macro.h"

/* How long accepting pauses after a failure that is not the connection's own. */
#define ACCEPTOR_RETRY_USEC (100U * 1000U)

struct acceptor;

/* Called once per accepted connection: @fd is non-blocking and close-on-exec, and owned by
 * the callee from here on. */
typedef void (*acceptor_handler_t)(int fd, void *userdata);

/*
 * Accepts on the listening socket @fd (borrowed: the caller closes it after acceptor_free();
 * it is made non-blocking here) at most @burst connections per wakeup, handing each to @cb.
 * @description names the event sources. Returns 0, -EINVAL, -ENOMEM or the error of fcntl()
 * or sd-event. Logs at debug only, here and while accepting.
 */
int acceptor_new(sd_event *e, int fd, unsigned burst, const char *description,
		 acceptor_handler_t cb, void *userdata, struct acceptor **ret);
/* Stops accepting. Accepts NULL, returns NULL. */
struct acceptor *acceptor_free(struct acceptor *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct acceptor *, acceptor_free);
/* How often accepting was paused so far (tests). */
uint64_t acceptor_n_pauses(const struct acceptor *a);
