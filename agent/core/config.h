/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xpud's configuration file (YAML, /etc/xpud/xpud.yaml by default; see docs/configuration.md).
 * Parsing is pure: text in, struct out, with line-numbered errors. Unknown keys are errors so
 * that a typo never silently changes nothing.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "shared/macro.h"

#define CONFIG_DEFAULT_PATH "/etc/xpud/xpud.yaml"

struct config {
	char *socket_path;     /* NULL: default */
	char *socket_group;    /* group owning the socket (read-only API access) */
	unsigned socket_mode;  /* permission bits of the socket, default 0660 */
	char *admin_group;     /* members may call mutating endpoints, besides root */
	char *nvml_library;    /* path of libnvidia-ml.so.1; NULL: the loader's search */
	uint64_t health_interval_usec; /* health probe period; 0 disables probing */
	int log_level;	       /* -1: leave as is */
};

void config_init(struct config *c);
void config_done(struct config *c);

/*
 * Parses YAML text into @c (initialised by the caller). Returns 0, or -EINVAL with a malloc'd
 * message in *ret_error of the form "line N: ...". Does not log.
 */
int config_parse(const char *text, size_t len, struct config *c, char **ret_error);

/* Reads and parses a file. -ENOENT when missing; errors as config_parse() ("FILE:line N: ..."). */
int config_load(const char *path, struct config *c, char **ret_error);

/* "30s", "500ms", "2m", or a plain number of seconds. 0 or -EINVAL/-ERANGE. */
int parse_duration(const char *s, uint64_t *ret_usec);
