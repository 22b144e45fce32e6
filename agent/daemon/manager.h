/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon: one sd-event loop that owns the host view, the backends, the inventory and the
 * API socket, and reacts to uevents, signals, the health timer and the watchdog.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "shared/macro.h"

struct manager_options {
	const char *root;	   /* host root; NULL or "/" for the real host */
	const char *socket_path;   /* overrides the config */
	const char *config_path;   /* NULL: CONFIG_DEFAULT_PATH if it exists */
	bool config_explicit;	   /* --config given: a missing file is an error */
	const char *uevent_socket; /* test uevent socket; default <root>/run/xpud-uevent.sock */
	int log_level;		   /* -1: from config */
	const char *state_dir;	   /* NULL: STATE_DEFAULT_DIR below the root */
	const char *kubelet_dir;   /* NULL: the config's, else the default below the root */
	const char *cdi_dir;	   /* NULL: the config's, else CDI_DEFAULT_DIR below the root */
	const char *nfd_dir;	   /* NULL: the config's, else NFD_DEFAULT_DIR below the root */
};

struct manager;

/*
 * Sets everything up: config, host, backends, the first inventory, the API socket (or the one
 * systemd passed), uevents, timers, signals. Logs its own errors. Returns 0 or -errno.
 */
int manager_new(const struct manager_options *o, struct manager **ret);
struct manager *manager_free(struct manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free);

/* Runs until SIGTERM/SIGINT. Returns 0 or -errno. */
int manager_run(struct manager *m);
