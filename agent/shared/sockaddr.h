/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Listening addresses as a configuration file writes them: "127.0.0.1:9400", "[::1]:9400" (IP
 * literals only: nothing is resolved) or "unix:/run/xpud/metrics.sock". Pure parsing and a
 * listening socket made from the result.
 */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

struct listen_address {
	struct sockaddr_storage sa;
	socklen_t len;
	bool is_unix; /* sa is a sockaddr_un with an absolute path */
};

/* 0, or -EINVAL for anything else than the forms above (a port of 1-65535, a path that fits a
 * Unix socket address). Never logs. */
int listen_address_parse(const char *s, struct listen_address *ret);
/* Whether listen_address_parse() accepts @s (for the configuration's checks). */
bool listen_address_valid(const char *s);
/*
 * A listening stream socket (non-blocking, close-on-exec) bound to @a: a TCP address with
 * SO_REUSEADDR; a Unix path replacing a stale socket (never another kind of file), with mode
 * @mode. Returns the fd or -errno. Never logs.
 */
int listen_address_open(const struct listen_address *a, unsigned mode);
