/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xpud's configuration file (YAML, /etc/xpud/xpud.yaml by default; see docs/configuration.md).
 * Parsing is pure: text in, struct out, with line-numbered errors. Unknown keys are errors so
 * that a typo never silently changes nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/health.h"
#include "core/policy.h"
#include "shared/macro.h"
#include "shared/parse.h"

#define CONFIG_DEFAULT_PATH "/etc/xpud/xpud.yaml"
#define CONFIG_REPARTITION_TIMEOUT_USEC (10ULL * 60 * 1000000) /* repartition-timeout: 10 min */
#define CONFIG_METRICS_INTERVAL_USEC (15ULL * 1000000)		/* metrics: interval: 15 s */

/* What a device's error asks for, in increasing severity (the words a backend's table of faults
 * uses in the configuration). */
enum health_action {
	HEALTH_ACTION_IGNORE,
	HEALTH_ACTION_APP_ERROR,    /* the application's fault; the device is fine */
	HEALTH_ACTION_RESTART_APP,  /* restart the application; the device is fine */
	HEALTH_ACTION_RESET_DEVICE, /* the device is unusable until it is reset */
	HEALTH_ACTION_REBOOT_NODE,  /* ... until the node is rebooted */
	_HEALTH_ACTION_MAX,
	_HEALTH_ACTION_INVALID = -22,
};

const char *health_action_to_string(enum health_action a);
enum health_action health_action_from_string(const char *s);

/*
 * Key tables. A mapping of the file is declared as a table of keys, each with a typed parser
 * and the offset of the field it fills; one walker checks any mapping against its table, so that
 * unknown keys, keys given twice and bad values are refused the same way everywhere, with the
 * line. The core's keys are one table; each backend declares its own section (below).
 */
struct config_ctx;  /* the document being parsed, and where its error goes */
struct config_node; /* one node of the document: a value, a list or a mapping */

/* One value, as a key's parser receives it. */
struct config_value {
	const char *key; /* as the file spells it (an old spelling too), for messages */
	size_t line;	 /* the key's line */
	const struct config_node *node;
};

struct config_key;

/*
 * Parses @v into @field (the table's struct plus the key's offset). Returns 0, -EINVAL after
 * config_fail() (the message names v->key and the line), or -ENOMEM. A parser that allocates
 * frees what @field held before; what it leaves is freed by the key's done hook (or by the
 * typed parsers' own rule, see config_table_done()).
 */
typedef int (*config_parse_t)(struct config_ctx *x, const struct config_key *k,
			      const struct config_value *v, void *field);

struct config_key {
	const char *name; /* NULL ends a table */
	config_parse_t parse;
	size_t offset;	    /* of the field in the table's struct */
	const char *expect; /* what a good value looks like, for messages; NULL: the type's */
	uint64_t min, max;  /* config_parse_unsigned: the range; config_parse_size: max (0: none) */
	const char *const *words;	/* config_parse_enum: the values, NULL-terminated */
	int (*lookup)(const char *s);	/* config_parse_enum: instead of words; < 0: not one */
	bool (*valid)(const char *s);	/* config_parse_string, _list: each value's check */
	const struct config_key *table; /* config_parse_table: the nested mapping's keys */
	void (*done)(void *field);	/* a custom parser's field: frees it */
};

/* The typed parsers. Scalars must be non-empty single values. */
int config_parse_string(struct config_ctx *x, const struct config_key *k,
			const struct config_value *v, void *field); /* char *, checked by valid */
int config_parse_path(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field); /* char *, absolute */
int config_parse_bool(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field); /* bool: true or false */
int config_parse_unsigned(struct config_ctx *x, const struct config_key *k,
			  const struct config_value *v, void *field); /* unsigned, min..max */
int config_parse_mode(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field); /* unsigned, octal, <= 0777 */
int config_parse_duration(struct config_ctx *x, const struct config_key *k,
			  const struct config_value *v, void *field); /* uint64_t, microseconds */
int config_parse_size(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field); /* uint64_t, bytes, > 0 */
int config_parse_enum(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field); /* int: index or lookup() */
int config_parse_list(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field); /* char **: a list or one */
int config_parse_table(struct config_ctx *x, const struct config_key *k,
		       const struct config_value *v, void *field); /* a nested mapping */

/* The offset of @field in @type, which must be of type @ctype: a table cannot fill a field with
 * the wrong type's parser. */
#define CONFIG_FIELD(type, field, ctype)                                                           \
	(offsetof(type, field) + 0 * sizeof(struct {                                               \
					 int _type_check_ : __builtin_types_compatible_p(          \
								typeof(((type *)0)->field), ctype) \
							    ? 1                                    \
							    : -1;                                  \
				 }))

/* Table entries; the optional arguments set expect, min, max, words, valid, ... */
#define CONFIG_KEY_STRING(n, type, field, ...)                                                     \
	{                                                                                          \
		.name = (n), .parse = config_parse_string,                                         \
		.offset = CONFIG_FIELD(type, field, char *), __VA_ARGS__                           \
	}
#define CONFIG_KEY_PATH(n, type, field, ...)                                                       \
	{                                                                                          \
		.name = (n), .parse = config_parse_path,                                           \
		.offset = CONFIG_FIELD(type, field, char *), __VA_ARGS__                           \
	}
#define CONFIG_KEY_BOOL(n, type, field, ...)                                                       \
	{                                                                                          \
		.name = (n), .parse = config_parse_bool,                                           \
		.offset = CONFIG_FIELD(type, field, bool), __VA_ARGS__                             \
	}
#define CONFIG_KEY_UNSIGNED(n, type, field, lo, hi, ...)                                           \
	{                                                                                          \
		.name = (n), .parse = config_parse_unsigned,                                       \
		.offset = CONFIG_FIELD(type, field, unsigned), .min = (lo), .max = (hi),           \
		__VA_ARGS__                                                                        \
	}
#define CONFIG_KEY_MODE(n, type, field, ...)                                                       \
	{                                                                                          \
		.name = (n), .parse = config_parse_mode,                                           \
		.offset = CONFIG_FIELD(type, field, unsigned), __VA_ARGS__                         \
	}
#define CONFIG_KEY_DURATION(n, type, field, ...)                                                   \
	{                                                                                          \
		.name = (n), .parse = config_parse_duration,                                       \
		.offset = CONFIG_FIELD(type, field, uint64_t), __VA_ARGS__                         \
	}
#define CONFIG_KEY_SIZE(n, type, field, ...)                                                       \
	{                                                                                          \
		.name = (n), .parse = config_parse_size,                                           \
		.offset = CONFIG_FIELD(type, field, uint64_t), __VA_ARGS__                         \
	}
#define CONFIG_KEY_ENUM(n, type, field, ...)                                                       \
	{                                                                                          \
		.name = (n), .parse = config_parse_enum, .offset = CONFIG_FIELD(type, field, int), \
		__VA_ARGS__                                                                        \
	}
#define CONFIG_KEY_LIST(n, type, field, ...)                                                       \
	{                                                                                          \
		.name = (n), .parse = config_parse_list,                                           \
		.offset = CONFIG_FIELD(type, field, char **), __VA_ARGS__                          \
	}
#define CONFIG_KEY_TABLE(n, type, field, keys, ...)                                                \
	{                                                                                          \
		.name = (n), .parse = config_parse_table, .offset = offsetof(type, field),         \
		.table = (keys), __VA_ARGS__                                                       \
	}
#define CONFIG_KEY_CUSTOM(n, fn, type, field, ...)                                                 \
	{                                                                                          \
		.name = (n), .parse = (fn), .offset = offsetof(type, field), __VA_ARGS__           \
	}

/* Frees what a table's parsers left in @base: strings, lists, nested tables, custom fields
 * (their done hook). Leaves freed fields NULL. */
void config_table_done(const struct config_key *table, void *base);

/* For custom parsers: the text of a value node (NULL for a list or a mapping), its line, its
 * shape in words ("a list"), and its elements (a list's items, a mapping's pairs; 0 for a
 * value). */
enum config_node_kind {
	CONFIG_NODE_VALUE,
	CONFIG_NODE_LIST,
	CONFIG_NODE_MAPPING,
};

enum config_node_kind config_node_kind(const struct config_node *n);
const char *config_node_text(const struct config_node *n);
size_t config_node_line(const struct config_node *n);
const char *config_node_shape(const struct config_node *n);
size_t config_node_size(const struct config_node *n);
const struct config_node *config_node_item(struct config_ctx *x, const struct config_node *n,
					   size_t i);
void config_node_pair(struct config_ctx *x, const struct config_node *n, size_t i,
		      const struct config_node **ret_key, const struct config_node **ret_value);
/* A single, non-empty value: its text in *ret; else fails like the typed parsers. */
int config_value_text(struct config_ctx *x, const struct config_value *v, const char **ret);
/* Refuses the document: "line N: <message>". Returns -EINVAL (-ENOMEM when out of memory). */
int config_fail(struct config_ctx *x, size_t line, const char *fmt, ...) _printf_(3, 4);

/*
 * A section of the file that a backend owns: "NAME: {KEY: VALUE, ...}" at the top level, its
 * keys parsed by @keys into a struct of @size bytes that the configuration holds for the backend
 * (config_section()). The core does not know the keys; the composition root hands the sections
 * to config_init_sections().
 */
struct config_alias {
	const char *old; /* an old top-level key ("foo-library") */
	const char *key; /* the section's key it now is ("library") */
};

struct config_section {
	const char *name;
	const struct config_key *keys;
	size_t size;
	void (*init)(void *data); /* defaults on zeroed memory; NULL: zeroes */
	/* Old top-level spellings: still accepted, with a warning naming the new one. {} ends. */
	const struct config_alias *aliases;
};

/* A workload shape of "shapes:" (docs/metrics.md): the fields of a fit request, named. */
struct config_shape {
	char *name;	       /* [A-Za-z0-9._-], 1-63, unique in the file */
	char *resource;	       /* a resource name (resource_name_valid()) */
	unsigned count;	       /* slices per workload, 1 by default */
	bool numa_local;       /* all of a workload's slices on one NUMA node */
	bool connected;	       /* all of a workload's devices linked by a fabric */
	uint64_t memory_bytes; /* device memory per slice; 0: any */
};

struct config_shapes {
	struct config_shape *items;
	size_t n;
};

void config_shapes_done(struct config_shapes *s);
/* Copies @n shapes of @src into *ret (the old content freed first). 0 or -ENOMEM. */
int config_shapes_copy(const struct config_shape *src, size_t n, struct config_shapes *ret);

struct config {
	char *socket_path;		   /* NULL: default */
	char *socket_group;		   /* group owning the socket (read-only API access) */
	unsigned socket_mode;		   /* permission bits of the socket, default 0660 */
	char *admin_group;		   /* members may call mutating endpoints, besides root */
	uint64_t health_interval_usec;	   /* health probe period; 0 disables probing */
	struct health_policy health;	   /* health-suspect-after, health-probation */
	uint64_t repartition_timeout_usec; /* how long a repartition waits for slices; 0: ever */
	int log_level;			   /* -1: leave as is */
	char *kubelet_dir;    /* the kubelet's device plugin directory; NULL: default */
	char *pre_start_hook; /* run before a container starts (PreStartContainer); NULL: none */
	char *cdi_dir;	      /* where CDI specs are written; NULL: default */
	char *nfd_dir;	      /* NFD's local features directory; NULL: default */
	struct policy policy; /* "partitions:": how devices are offered; no rules: all whole */
	/* "reset-when-idle:": the kinds of device xpud resets by itself when a fault asks for a
	 * reset and nothing is allocated on them; one bit per enum xpu_kind (CONFIG_KIND_BIT). */
	unsigned reset_when_idle;
	/* "enforce:": where grants that ask to be confined get their cgroups (read at start) */
	struct config_enforce {
		char *cgroup_root;     /* a delegated cgroup2 directory; NULL: detected */
		char *devices_v1_root; /* a directory of the v1 devices controller; NULL: detected */
		int devices;	       /* CONFIG_ENFORCE_DEVICES_WORDS' index: 0 auto, 1 bpf, ... */
	} enforce;
	/* "metrics:": the Prometheus listener (read at start) and how often its page is renewed */
	struct config_metrics {
		char *listen;		/* listen_address_parse()'s forms; NULL: no metrics */
		uint64_t interval_usec; /* CONFIG_METRICS_INTERVAL_USEC by default; >= 1 s */
	} metrics;
	/* "shapes:": the workload shapes whose fit the metrics report (xpu_shape_fits) */
	struct config_shapes shapes;

	/* The sections the file may have (borrowed, NULL-terminated; NULL: none), and their parsed
	 * structs, one per section, allocated by the parse (see config_section()). */
	const struct config_section *const *sections;
	void **section_data;
	/* What was accepted but should change (old spellings): "line N: ..." from config_parse(),
	 * "FILE:line N: ..." from config_load(); the caller logs them. */
	char **warnings;
};

/* The values of enforce: devices:, in the order of enum enforce_devices (services/enforce.h). */
#define CONFIG_ENFORCE_DEVICES_WORDS { "auto", "bpf", "devices-v1", NULL }

#define CONFIG_KIND_BIT(kind) (1U << (unsigned)(kind))
#define CONFIG_ALL_KINDS ((1U << _XPU_KIND_MAX) - 1)

/* Defaults, and no sections: a file with any section's key is refused as unknown. */
void config_init(struct config *c);
/* Defaults, and @sections (borrowed: they must outlive @c) as the sections the file may have. */
void config_init_sections(struct config *c, const struct config_section *const *sections);
/* Frees everything, sections' structs included; @c is left as config_init() leaves it. */
void config_done(struct config *c);

/*
 * The parsed struct of section @name (borrowed from @c), or NULL when @c has no such section or
 * was not parsed: the backend's defaults apply then.
 */
const void *config_section(const struct config *c, const char *name);

/*
 * Parses YAML text into @c (initialised by the caller). Returns 0, or -EINVAL with a malloc'd
 * message in *ret_error of the form "line N: ...". Does not log.
 */
int config_parse(const char *text, size_t len, struct config *c, char **ret_error);

/*
 * Parses a layout, a partition rule without 'match' ("mig: [3g.40gb, 3g.40gb]", "replicas: 4",
 * "whole: true"; YAML), into @ret (caller frees with offer_done()). 0, or -EINVAL with a
 * malloc'd "line N: ..." in *ret_error, or -ENOMEM.
 */
int config_parse_layout(const char *text, size_t len, struct offer *ret, char **ret_error);

/* Reads and parses a file. -ENOENT when missing; errors as config_parse() ("FILE:line N: ..."). */
int config_load(const char *path, struct config *c, char **ret_error);

/* A resource name as Kubernetes extended resources have them: a lower-case DNS subdomain, '/',
 * then 1-63 of [A-Za-z0-9._-] starting and ending alphanumeric ("example.com/gpu-shared"). */
bool resource_name_valid(const char *s);
