/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What xpuctl's files share: the command line as parsed (struct ctl), the exit status, and the
 * requests to xpud. Every function that returns an int here returns an exit status (CTL_EXIT_*)
 * and has printed why when it is not CTL_EXIT_OK.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "shared/macro.h"

struct column;
struct xpu_client;

/* Exit status (also in --help and docs/xpuctl.md; scripts depend on it, keep it stable). */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_USAGE = 1,
	CTL_EXIT_DAEMON_ERROR = 2,
	CTL_EXIT_UNREACHABLE = 3,
	CTL_EXIT_MALFORMED = 4,
};

struct ctl {
	const char *socket_arg; /* --socket, or NULL for $XPUD_SOCKET / the default */
	bool json;
	bool legend;
	/* alloc */
	bool numa_local;
	bool connected;
	const char *device;
	const char *owner_kind; /* "pid", "unit", "cgroup", "pod" */
	const char *owner_value;
	/* fit */
	const char *memory;
	const char *compute;
	const char *count;
	const char *kind;
	const char *resource;
	/* cordon, repartition */
	const char *reason;
	const char *layout;
	bool to_policy;
	const char *timeout;
	bool wait;
	/* export */
	const char *dev_prefix;
	/* top */
	const char *interval;
	/* run */
	const char *memory_max;
	const char *cpu_quota;
	bool enforce; /* --enforce */
	unsigned n_alloc_options; /* how many of the alloc options were given */
	unsigned n_placement_options; /* --numa-local, --connected */
	unsigned n_fit_options;
	unsigned n_cordon_options;
	unsigned n_repartition_options;
	unsigned n_export_options;
	unsigned n_top_options;
	unsigned n_run_options;
	struct xpu_client *client; /* connected on first use */
};

#define _cleanup_json_ _cleanup_(json_decrefp)

/* main.c: "xpuctl: <message> (see xpuctl --help)" on stderr; CTL_EXIT_USAGE. */
int usage_error(const char *fmt, ...) _printf_(1, 2);

/* The usage of "run": main.c's table and run.c's messages. */
#define RUN_USAGE                                                                            \
	"run --resource RESOURCE[=COUNT] [--numa-local] [--memory-max SIZE] "                 \
	"[--cpu-quota PERCENT] [--device ID] [--connected] -- COMMAND [ARG...]"

/*
 * run.c: the "enforce" object of a grant: the limits of --memory-max, --cpu-quota and (cpuset)
 * --numa-local. CTL_EXIT_OK, or a usage error printed.
 */
int enforce_body(const struct ctl *ctl, json_t **ret);

/* client.c: talking to the daemon */
const char *ctl_socket(const struct ctl *ctl);
int oom(void);
int malformed(const struct ctl *ctl, const char *what);
int ctl_connect(struct ctl *ctl);
int transport_error(const struct ctl *ctl, int r);
int daemon_error(int status, const json_t *doc);
/* One request; *ret_status and *ret_doc are written on CTL_EXIT_OK, whatever the status. */
int ctl_request(struct ctl *ctl, const char *method, const char *path, int *ret_status,
		json_t **ret_doc);
/* A request whose answer must be a 2xx with a JSON object, returned in *ret. */
int ctl_call_body(struct ctl *ctl, const char *method, const char *path, const json_t *body,
		  json_t **ret);
int ctl_call(struct ctl *ctl, const char *method, const char *path, json_t **ret);
/* GET @path, whose answer holds the array of objects @key: both returned. */
int fetch_list(struct ctl *ctl, const char *path, const char *key, json_t **ret_doc,
	       const json_t **ret_list);
/*
 * A listing verb: GET @path, whose answer holds the array @key, printed as it came with -o json,
 * else as a table of @columns.
 */
int list_verb(struct ctl *ctl, const char *path, const char *key, const struct column *columns,
	      size_t n_columns);
/* The body of POST /v1/fit from --memory, --compute, --count, --kind and --resource. */
int fit_body(const struct ctl *ctl, json_t **ret);
/* Table cells of an allocation: the IDs of its slices ("s0,s1"), and its owner ("pid 20865",
 * with " (gone, release pending)" once its owner has gone). */
const char *allocation_slices(const json_t *a, char *buf, size_t size);
const char *allocation_owner(const json_t *a, char *buf, size_t size);
/* "nvidia.com/gpu=2" or "nvidia.com/gpu" (one): 0, -EINVAL, -ENOMEM. */
int parse_resource_count(const char *arg, char **ret_resource, unsigned *ret_count);
/* Percent-encodes one path segment (malloc'd), or NULL when out of memory. */
char *path_escape(const char *s);

/* The verbs: each takes the command's arguments, as many as its row in main.c says. */
int verb_devices(struct ctl *ctl, char **args);
int verb_device(struct ctl *ctl, char **args);
int verb_slices(struct ctl *ctl, char **args);
int verb_capacity(struct ctl *ctl, char **args);
int verb_health(struct ctl *ctl, char **args);
int verb_version(struct ctl *ctl, char **args);
int verb_rescan(struct ctl *ctl, char **args);
int verb_reload(struct ctl *ctl, char **args);
int verb_alloc(struct ctl *ctl, char **args);
int verb_release(struct ctl *ctl, char **args);
int verb_allocations(struct ctl *ctl, char **args);
int verb_fit(struct ctl *ctl, char **args);
int verb_plan(struct ctl *ctl, char **args);
int verb_cordon(struct ctl *ctl, char **args);
int verb_uncordon(struct ctl *ctl, char **args);
int verb_repartition(struct ctl *ctl, char **args);
int verb_events(struct ctl *ctl, char **args);
int verb_export(struct ctl *ctl, char **args);
int verb_top(struct ctl *ctl, char **args);
int verb_run(struct ctl *ctl, char **args);
