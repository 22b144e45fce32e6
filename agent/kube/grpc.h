/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small gRPC layer over libnghttp2 on xpud's sd-event loop: HTTP/2 without TLS (h2c) on Unix
 * sockets, which is all the kubelet device plugin API needs. Server side: unary and
 * server-streaming methods, looked up by their ":path"; client side: one unary call on a fresh
 * connection (Registration.Register). Messages are opaque bytes here (protobuf-c encodes them);
 * the framing and the header values are in grpc-frame.h. One thread, non-blocking sockets,
 * bounded buffers. Nothing here logs above debug.
 *
 * What is not implemented, on purpose: compression (we announce no grpc-accept-encoding and
 * refuse compressed messages with UNIMPLEMENTED), client streaming, metadata beyond the
 * protocol's own headers, TLS.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "kube/grpc-frame.h"
#include "shared/macro.h"

struct grpc_server;
struct grpc_call;
struct grpc_client_call;

struct grpc_limits {
	size_t max_message_bytes; /* a larger request: RESOURCE_EXHAUSTED, read no further */
	size_t max_connections;	  /* when full, the connection idle longest (no call in
				   * progress, no stream) is closed for a new one; without one,
				   * the new one is closed at once */
	uint32_t max_streams;	  /* concurrent streams per connection (HTTP/2 SETTINGS) */
	size_t max_output_bytes;  /* a stream whose reader falls this far behind is cancelled */
	uint64_t header_timeout_usec; /* a begun client preface or request must be complete
				       * within this, else the connection is closed (0: none) */
	uint64_t idle_timeout_usec;   /* a connection without a call in progress or a kept stream
				       * is closed after this (0: none) */
};

#define GRPC_LIMITS_DEFAULT                                                                        \
	((struct grpc_limits){                                                                     \
		.max_message_bytes = GRPC_MAX_MESSAGE_DEFAULT,                                     \
		.max_connections = 32,                                                             \
		.max_streams = 64,                                                                 \
		.max_output_bytes = 4U * 1024U * 1024U,                                            \
		.header_timeout_usec = 5U * 1000000U,                                              \
		.idle_timeout_usec = 60U * 1000000U,                                               \
	})

/*
 * Called once per complete request (exactly one message). The handler answers with
 * grpc_call_send() (any number of times for a streaming method, once for a unary one) and
 * grpc_call_finish(). It must finish the call before it returns unless it called
 * grpc_call_set_on_close() to keep it: an unanswered call that nobody keeps is finished with
 * INTERNAL. @msg is valid during the call only.
 */
typedef void (*grpc_handler_t)(struct grpc_call *call, const uint8_t *msg, size_t len,
			       void *userdata);

struct grpc_method {
	const char *path; /* "/v1beta1.DevicePlugin/Allocate" */
	grpc_handler_t handler;
};

/*
 * Serves @methods (borrowed, must outlive the server) on the listening socket @fd (ownership
 * passes, also on failure; made non-blocking). @limits NULL: GRPC_LIMITS_DEFAULT. Unknown
 * paths get UNIMPLEMENTED. Returns 0, -EINVAL or -ENOMEM.
 */
int grpc_server_new(sd_event *e, int fd, const struct grpc_limits *limits,
		    const struct grpc_method *methods, size_t n_methods, void *userdata,
		    struct grpc_server **ret);
/*
 * Ends every open call with UNAVAILABLE (sent best effort, without waiting; their on_close
 * callbacks run), closes the connections and the listening socket. Accepts NULL, returns NULL.
 */
struct grpc_server *grpc_server_free(struct grpc_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct grpc_server *, grpc_server_free);
size_t grpc_server_n_connections(const struct grpc_server *s);

/*
 * Keeps @c beyond its handler (a server stream). @on_close is called once if the call ends
 * other than by the keeper's grpc_call_finish(): the peer cancelled or hung up, the deadline
 * (grpc-timeout) passed, its reader fell behind, or the server is freed. The keeper drops its
 * pointer then.
 */
typedef void (*grpc_call_close_t)(struct grpc_call *c, void *userdata);
void grpc_call_set_on_close(struct grpc_call *c, grpc_call_close_t on_close, void *userdata);

/*
 * Queues one message. 0; -EINVAL when @c is finished; -EMSGSIZE; -ENOBUFS when the reader is
 * more than max_output_bytes behind (the call is then cancelled and on_close called before
 * this returns); -ENOMEM.
 */
int grpc_call_send(struct grpc_call *c, const void *msg, size_t len);
/*
 * Ends the call with @status and @message (NULL: none) in the trailers, after the queued
 * messages. @c must not be used afterwards; on_close is not called. 0 or -ENOMEM (the stream
 * is reset instead).
 */
int grpc_call_finish(struct grpc_call *c, int status, const char *message);
/* The call's deadline on CLOCK_MONOTONIC (from grpc-timeout), or UINT64_MAX for none. */
uint64_t grpc_call_deadline(const struct grpc_call *c);
/* The request's ":path". */
const char *grpc_call_path(const struct grpc_call *c);

/*
 * The reply to a client call: @status is the grpc-status (or one we determined: UNAVAILABLE
 * when the connection failed, DEADLINE_EXCEEDED when the timeout passed, INTERNAL for a reply
 * that breaks the protocol), @message the decoded grpc-message or NULL, @reply the message
 * (NULL when status is not OK).
 */
typedef void (*grpc_reply_t)(int status, const char *message, const uint8_t *reply, size_t len,
			     void *userdata);

/*
 * Calls the unary method @path on the server listening at @socket_path with the request
 * @msg (copied), over a new connection. The connect happens now: -ENOENT, -ECONNREFUSED and
 * friends are returned at once (no callback). Otherwise @cb is called exactly once, from the
 * event loop, unless the call is cancelled first; the call is freed after @cb returns, so the
 * caller drops its pointer there. @timeout_usec 0: none; else sent as grpc-timeout and
 * enforced here. 0 or -errno.
 */
int grpc_client_call_new(sd_event *e, const char *socket_path, const char *path,
			 const void *msg, size_t len, uint64_t timeout_usec, grpc_reply_t cb,
			 void *userdata, struct grpc_client_call **ret);
/* Abandons the call without calling its callback. Accepts NULL, returns NULL. */
struct grpc_client_call *grpc_client_call_cancel(struct grpc_client_call *c);
