/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libxpu internals for the fuzzer (tests/fuzz/fuzz-client.c), which compiles client.c into
 * itself. None of this is exported: the library is built with hidden visibility and only
 * _public_ functions leave it. The *_fd() calls read an answer from a connection on which the
 * request counts as already sent, through exactly the code xpu_client_request() and
 * xpu_client_stream() use after sending theirs, and with their results and errors; @fd is
 * consumed (closed before returning, whatever the result). No receive timeout is set on @fd:
 * that is the caller's.
 */
#ifndef XPU_CLIENT_INTERNAL_H
#define XPU_CLIENT_INTERNAL_H

#include "xpu/client.h"

/* A client like xpu_client_new()'s that does not connect until its first request needs to. */
int client_new_unconnected(const char *socket_path, struct xpu_client **ret);

/* Reads the answer to a plain request from @fd, as xpu_client_request(). */
int client_request_fd(struct xpu_client *c, int fd, int *ret_status, json_t **ret_doc);

/* Follows a stream answered on @fd, as xpu_client_stream(). */
int client_stream_fd(struct xpu_client *c, int fd, xpu_client_event_cb cb, void *userdata);

#endif
