/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libxpu: the client library for xpud's local socket API. xpuctl is built on it; third-party
 * tools can link it instead of speaking HTTP themselves. Documents are jansson objects.
 * Every function returns 0 or a negative errno; none of them print anything.
 */
#ifndef XPU_CLIENT_H
#define XPU_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#define XPU_DEFAULT_SOCKET "/run/xpud/xpud.sock"

struct xpu_client;

/*
 * Connects to @socket_path (NULL: $XPUD_SOCKET, else XPU_DEFAULT_SOCKET). -ENOENT / -ECONNREFUSED
 * / -EACCES when nothing serves there, -ENAMETOOLONG when the path does not fit a socket address,
 * -ETIMEDOUT when the daemon's backlog stays full. The path actually tried is in
 * xpu_client_socket_path(). The connection is used by the first request; later requests open
 * their own (each request is one connection). A client is not thread-safe: use one per thread.
 */
int xpu_client_new(const char *socket_path, struct xpu_client **ret);
/* Closes and frees @c. Accepts NULL; returns NULL. */
struct xpu_client *xpu_client_free(struct xpu_client *c);
/* @socket_path itself when non-empty, else a non-empty $XPUD_SOCKET, else XPU_DEFAULT_SOCKET. */
const char *xpu_client_socket_path(const char *socket_path);

/*
 * One request. @body may be NULL. On any HTTP answer returns 0 with the status in *ret_status and
 * the parsed JSON body in *ret_doc (NULL when the body was empty; a new reference the caller
 * owns); -EBADMSG when the answer is not HTTP or not JSON; -EMSGSIZE when it is larger than
 * 64 MiB (or its header section than 64 KiB); -ECONNRESET when the daemon closed the connection
 * before the answer was complete; -ETIMEDOUT when it did not answer for 30 s; -EINVAL for a
 * method or path that cannot go on a request line; -errno for other socket errors. Either
 * output parameter may be NULL; both are written only on success.
 */
int xpu_client_request(struct xpu_client *c, const char *method, const char *path,
		       const json_t *body, int *ret_status, json_t **ret_doc);

/*
 * Follows a streaming endpoint (newline-delimited JSON, chunked), calling @cb for each document.
 * @doc is borrowed for the duration of the call (json_incref() it to keep it). Returns when the
 * server ends the stream (0), @cb returns non-zero (that value), or on error: the errors of
 * xpu_client_request() (no receive timeout applies: a stream may be idle for hours), -EINTR
 * when a signal handler installed without SA_RESTART interrupted the wait (so a program can
 * stop following on SIGINT), and, when the daemon answered with an HTTP error instead of a
 * stream, an errno derived from its status (404 -ENOENT, 401/403 -EACCES, 400 -EINVAL,
 * 405/501 -EOPNOTSUPP, 429/503 -EAGAIN, other 4xx -EPROTO, other 5xx -EIO): see
 * xpu_client_last_error() for the status and the daemon's message.
 */
typedef int (*xpu_client_event_cb)(json_t *doc, void *userdata);
int xpu_client_stream(struct xpu_client *c, const char *path, xpu_client_event_cb cb,
		      void *userdata);

/*
 * When the last xpu_client_request() or xpu_client_stream() on @c got an HTTP error answer
 * (status >= 400): returns that status and, when @ret_message is non-NULL, writes the
 * "message" of the daemon's error document (borrowed, valid until the next call on @c; NULL
 * when the answer carried none). Returns 0 and writes nothing otherwise.
 */
int xpu_client_last_error(const struct xpu_client *c, const char **ret_message);

#endif
