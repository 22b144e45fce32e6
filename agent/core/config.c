// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The configuration file: the YAML document, the key tables and their typed parsers, the core's
 * own keys, and the sections that backends declare. The partition policy's rules are parsed in
 * config-policy.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config-internal.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/sockaddr.h"
#include "shared/strv.h"

#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_DEPTH 16

static const char *const action_table[_HEALTH_ACTION_MAX] = {
	[HEALTH_ACTION_IGNORE] = "ignore",
	[HEALTH_ACTION_APP_ERROR] = "app-error",
	[HEALTH_ACTION_RESTART_APP] = "restart-app",
	[HEALTH_ACTION_RESET_DEVICE] = "reset-gpu",
	[HEALTH_ACTION_REBOOT_NODE] = "reboot-node",
};

const char *health_action_to_string(enum health_action a)
{
	return a >= 0 && a < _HEALTH_ACTION_MAX ? action_table[a] : NULL;
}

enum health_action health_action_from_string(const char *s)
{
	for (int i = 0; s && i < _HEALTH_ACTION_MAX; i++)
		if (streq(s, action_table[i]))
			return (enum health_action)i;
	return _HEALTH_ACTION_INVALID;
}

static int config_vfail(char **ret_error, size_t line, const char *fmt, va_list ap)
	_printf_(3, 0);
static int config_vfail(char **ret_error, size_t line, const char *fmt, va_list ap)
{
	_cleanup_free_ char *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		return -ENOMEM;
	if (ret_error && asprintf(ret_error, "line %zu: %s", line, msg) < 0)
		return -ENOMEM;
	return -EINVAL;
}

int config_fail_printf(char **ret_error, size_t line, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = config_vfail(ret_error, line, fmt, ap);
	va_end(ap);
	return r;
}

int config_fail(struct config_ctx *x, size_t line, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = config_vfail(x->error, line, fmt, ap);
	va_end(ap);
	return r;
}

int config_set_string(char **field, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

/* A DNS subdomain in lower case: labels of [a-z0-9-], 1 to 63 characters, no '-' at an end. */
static bool dns_domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char ch = i < len ? s[i] : '.';

		if (ch == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			   (ch == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

bool resource_name_valid(const char *s)
{
	const char *slash = strchr(s, '/'), *name;
	size_t n;

	if (!slash || !dns_domain_valid(s, (size_t)(slash - s)))
		return false;
	name = slash + 1;
	n = strlen(name);
	if (n == 0 || n > 63 || !is_alnum(name[0]) || !is_alnum(name[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

int config_yaml_text(struct config_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		      const char **ret)
{
	if (v->type != YAML_SCALAR_NODE)
		return fail(x->error, line, "'%s': expected a single value, not %s", key,
			    node_shape(v));
	*ret = node_text(v);
	return 0;
}

/* The node accessors of config.h, for the parsers that backends write. */
enum config_node_kind config_node_kind(const struct config_node *n)
{
	const yaml_node_t *y = node_yaml(n);

	return y->type == YAML_SEQUENCE_NODE  ? CONFIG_NODE_LIST
	       : y->type == YAML_MAPPING_NODE ? CONFIG_NODE_MAPPING
					      : CONFIG_NODE_VALUE;
}

const char *config_node_text(const struct config_node *n)
{
	return node_text(node_yaml(n));
}

size_t config_node_line(const struct config_node *n)
{
	return node_line(node_yaml(n));
}

const char *config_node_shape(const struct config_node *n)
{
	return node_shape(node_yaml(n));
}

size_t config_node_size(const struct config_node *n)
{
	const yaml_node_t *y = node_yaml(n);

	if (y->type == YAML_SEQUENCE_NODE)
		return (size_t)(y->data.sequence.items.top - y->data.sequence.items.start);
	if (y->type == YAML_MAPPING_NODE)
		return (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start);
	return 0;
}

const struct config_node *config_node_item(struct config_ctx *x, const struct config_node *n,
					   size_t i)
{
	return yaml_node(yaml_document_get_node(&x->doc, node_yaml(n)->data.sequence.items.start[i]));
}

void config_node_pair(struct config_ctx *x, const struct config_node *n, size_t i,
		      const struct config_node **ret_key, const struct config_node **ret_value)
{
	const yaml_node_pair_t *p = &node_yaml(n)->data.mapping.pairs.start[i];

	*ret_key = yaml_node(yaml_document_get_node(&x->doc, p->key));
	*ret_value = yaml_node(yaml_document_get_node(&x->doc, p->value));
}

int config_value_text(struct config_ctx *x, const struct config_value *v, const char **ret)
{
	const char *text = NULL;
	int r;

	r = config_yaml_text(x, v->key, v->line, node_yaml(v->node), &text);
	if (r < 0)
		return r;
	if (isempty(text))
		return fail(x->error, v->line, "%s: a value is required", v->key);
	*ret = text;
	return 0;
}

/*
 * The typed parsers: a single, non-empty value, converted into the field by @convert (0, or
 * -EINVAL when the text is not of the type). The message names the key as the file spells it
 * and the key's line: "KEY: expected EXPECT, got 'TEXT'", or with @is_not "KEY: 'TEXT' is not
 * EXPECT".
 */
typedef int (*convert_t)(const struct config_key *k, const char *text, void *field);

static int parse_scalar(struct config_ctx *x, const struct config_key *k,
			const struct config_value *v, void *field, convert_t convert,
			const char *expect, bool is_not)
{
	const char *text = NULL;
	int r;

	r = config_value_text(x, v, &text);
	if (r < 0)
		return r;
	r = convert(k, text, field);
	if (r != -EINVAL)
		return r;
	if (is_not)
		return fail(x->error, v->line, "%s: '%s' is not %s", v->key, text, expect);
	return fail(x->error, v->line, "%s: expected %s, got '%s'", v->key, expect, text);
}

static int convert_string(const struct config_key *k, const char *text, void *field)
{
	if (k->valid && !k->valid(text))
		return -EINVAL;
	return config_set_string(field, text);
}

int config_parse_string(struct config_ctx *x, const struct config_key *k,
			const struct config_value *v, void *field)
{
	return parse_scalar(x, k, v, field, convert_string, k->expect ?: "an allowed value", true);
}

static int convert_path(const struct config_key *k, const char *text, void *field)
{
	return text[0] == '/' ? config_set_string(field, text) : -EINVAL;
}

int config_parse_path(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field)
{
	return parse_scalar(x, k, v, field, convert_path, k->expect ?: "an absolute path", false);
}

static int convert_bool(const struct config_key *k, const char *text, void *field)
{
	if (!streq(text, "true") && !streq(text, "false"))
		return -EINVAL;
	*(bool *)field = streq(text, "true");
	return 0;
}

int config_parse_bool(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field)
{
	return parse_scalar(x, k, v, field, convert_bool, "true or false", false);
}

static uint64_t unsigned_max(const struct config_key *k)
{
	return MIN(k->max, (uint64_t)UINT_MAX);
}

static int convert_unsigned(const struct config_key *k, const char *text, void *field)
{
	uint64_t u;

	if (safe_atou64(text, &u) < 0 || u < k->min || u > unsigned_max(k))
		return -EINVAL;
	*(unsigned *)field = (unsigned)u;
	return 0;
}

int config_parse_unsigned(struct config_ctx *x, const struct config_key *k,
			  const struct config_value *v, void *field)
{
	_cleanup_free_ char *expect = NULL;

	if (asprintf(&expect, "%s from %" PRIu64 " to %" PRIu64, k->expect ?: "a whole number",
		     k->min, unsigned_max(k)) < 0)
		return -ENOMEM;
	return parse_scalar(x, k, v, field, convert_unsigned, expect, false);
}

static int convert_mode(const struct config_key *k, const char *text, void *field)
{
	unsigned long m = 0;

	if (strlen(text) > 4 || strspn(text, "01234567") != strlen(text) ||
	    (m = strtoul(text, NULL, 8)) > 0777)
		return -EINVAL;
	*(unsigned *)field = (unsigned)m;
	return 0;
}

int config_parse_mode(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field)
{
	return parse_scalar(x, k, v, field, convert_mode,
			    k->expect ?: "octal permission bits such as 0660", false);
}

static int convert_duration(const struct config_key *k, const char *text, void *field)
{
	return parse_duration(text, field) < 0 ? -EINVAL : 0;
}

int config_parse_duration(struct config_ctx *x, const struct config_key *k,
			  const struct config_value *v, void *field)
{
	return parse_scalar(x, k, v, field, convert_duration, k->expect ?: "a duration such as 30s",
			    false);
}

static int convert_size(const struct config_key *k, const char *text, void *field)
{
	uint64_t b = 0;

	if (parse_size(text, &b) < 0 || b == 0 || (k->max && b > k->max))
		return -EINVAL;
	*(uint64_t *)field = b;
	return 0;
}

int config_parse_size(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field)
{
	return parse_scalar(x, k, v, field, convert_size,
			    k->expect ?: "a size with a unit such as 10GiB or 512MiB (B, KiB, MiB, "
					 "GiB, TiB)",
			    false);
}

/* "a, b or c" for the words of an enum key, when its table gives no wording of its own. */
static char *words_list(const char *const *words)
{
	size_t n = strv_length((char *const *)words);
	_cleanup_free_ char *head = NULL;
	char *s = NULL;

	if (n < 2)
		return strdup(n ? words[0] : "");
	head = strv_join((char *const *)words, ", ");
	if (!head)
		return NULL;
	/* the last ", " becomes " or " */
	head[strlen(head) - strlen(words[n - 1]) - 2] = '\0';
	if (asprintf(&s, "%s or %s", head, words[n - 1]) < 0)
		return NULL;
	return s;
}

static int convert_enum(const struct config_key *k, const char *text, void *field)
{
	int i = -1;

	if (k->lookup)
		i = k->lookup(text);
	for (size_t j = 0; !k->lookup && k->words && k->words[j]; j++)
		if (streq(k->words[j], text))
			i = (int)j;
	if (i < 0)
		return -EINVAL;
	*(int *)field = i;
	return 0;
}

int config_parse_enum(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field)
{
	_cleanup_free_ char *list = k->expect ? NULL : words_list(k->words);

	if (!k->expect && !list)
		return -ENOMEM;
	return parse_scalar(x, k, v, field, convert_enum, k->expect ?: list, false);
}

int config_parse_list(struct config_ctx *x, const struct config_key *k,
		      const struct config_value *v, void *field)
{
	const yaml_node_t *n = node_yaml(v->node);
	_cleanup_(strv_freep) char **list = NULL;
	char ***ret = field;

	if (n->type == YAML_MAPPING_NODE)
		return fail(x->error, v->line, "%s: expected a list such as [a, b], not a mapping",
			    v->key);
	/* one value is a list of one */
	for (size_t i = 0; i < (n->type == YAML_SCALAR_NODE ? 1 : config_node_size(v->node));
	     i++) {
		const yaml_node_t *item = n->type == YAML_SCALAR_NODE
						  ? n
						  : node_yaml(config_node_item(x, v->node, i));
		const char *text = node_text(item);

		if (isempty(text))
			return fail(x->error, node_line(item), "%s: expected %s in the list, not %s",
				    v->key, k->expect ?: "a value",
				    text ? "an empty value" : node_shape(item));
		if (k->valid && !k->valid(text))
			return fail(x->error, node_line(item), "%s: '%s' is not %s", v->key, text,
				    k->expect ?: "an allowed value");
		if (strv_extend(&list, text) < 0)
			return -ENOMEM;
	}
	if (!list && !(list = calloc(1, sizeof(char *))))
		return -ENOMEM; /* an empty list: given, and empty */
	strv_free(*ret);
	*ret = TAKE_PTR(list);
	return 0;
}

static const struct config_key *table_find(const struct config_key *table, const char *name)
{
	for (const struct config_key *k = table; k && k->name; k++)
		if (streq(k->name, name))
			return k;
	return NULL;
}

/* The names a mapping accepts, for the message about a key it does not: the table's, then
 * @more's (the sections, at the top level). */
static char *table_names(const struct config_key *table, const struct config_section *const *more)
{
	_cleanup_(strv_freep) char **names = NULL;

	for (const struct config_key *k = table; k && k->name; k++)
		if (strv_extend(&names, k->name) < 0)
			return NULL;
	for (size_t i = 0; more && more[i]; i++)
		if (strv_extend(&names, more[i]->name) < 0)
			return NULL;
	return names ? strv_join(names, ", ") : strdup("none");
}

static int unknown_key(struct config_ctx *x, size_t line, const char *key, const char *where,
		       const struct config_key *table, const struct config_section *const *more)
{
	_cleanup_free_ char *list = table_names(table, more);

	if (!list)
		return -ENOMEM;
	return fail(x->error, line, "unknown key '%s'%s (known: %s)", key, where, list);
}

/* A key of @map, not given before in @map (comparing with the earlier keys only: bounded), with
 * its line and value. @where names the mapping in messages (" in nvidia"; "" at the top). */
static int mapping_key(struct config_ctx *x, const yaml_node_t *map, const yaml_node_pair_t *p,
		       const char *where, struct config_value *ret)
{
	yaml_node_t *k = yaml_document_get_node(&x->doc, p->key);
	const char *key = node_text(k);

	if (!key)
		return fail(x->error, node_line(k), "expected a key%s, not %s", where, node_shape(k));
	for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
		if (streq_ptr(node_text(yaml_document_get_node(&x->doc, q->key)), key))
			return fail(x->error, node_line(k), "'%s' is given twice", key);
	*ret = (struct config_value){
		.key = key,
		.line = node_line(k),
		.node = yaml_node(yaml_document_get_node(&x->doc, p->value)),
	};
	return 0;
}

int config_yaml_key(struct config_ctx *x, const yaml_node_t *map, const yaml_node_pair_t *p,
		    const char *where, const char *const *known, const char **ret_key,
		    size_t *ret_line, yaml_node_t **ret_value)
{
	struct config_value v;
	int r;

	r = mapping_key(x, map, p, where, &v);
	if (r < 0)
		return r;
	if (!strv_contains((char *const *)known, v.key)) {
		_cleanup_free_ char *list = strv_join((char *const *)known, ", ");

		if (!list)
			return -ENOMEM;
		return fail(x->error, v.line, "unknown key '%s'%s (known: %s)", v.key, where, list);
	}
	*ret_key = v.key;
	*ret_line = v.line;
	*ret_value = (yaml_node_t *)node_yaml(v.node);
	return 0;
}

/* Every key of mapping @map (or an empty value: no keys) through @table into @base. */
static int parse_mapping(struct config_ctx *x, const struct config_value *v, const char *where,
			 const struct config_key *table, void *base)
{
	const yaml_node_t *map = node_yaml(v->node);

	if (map->type == YAML_SCALAR_NODE && isempty(node_text(map)))
		return 0; /* "name:" with every key commented out */
	if (map->type != YAML_MAPPING_NODE) {
		_cleanup_free_ char *list = table_names(table, NULL);

		if (!list)
			return -ENOMEM;
		return fail(x->error, v->line, "%s: expected a mapping of %s, not %s", v->key, list,
			    node_shape(map));
	}
	MAPPING_FOREACH(p, map) {
		const struct config_key *k;
		struct config_value kv;
		int r;

		r = mapping_key(x, map, p, where, &kv);
		if (r < 0)
			return r;
		k = table_find(table, kv.key);
		if (!k)
			return unknown_key(x, kv.line, kv.key, where, table, NULL);
		r = k->parse(x, k, &kv, (char *)base + k->offset);
		if (r < 0)
			return r;
	}
	return 0;
}

int config_parse_table(struct config_ctx *x, const struct config_key *k,
		       const struct config_value *v, void *field)
{
	_cleanup_free_ char *where = NULL;

	if (asprintf(&where, " in %s", v->key) < 0)
		return -ENOMEM;
	return parse_mapping(x, v, where, k->table, field);
}

void config_table_done(const struct config_key *table, void *base)
{
	for (const struct config_key *k = table; k && k->name; k++) {
		void *field = (char *)base + k->offset;

		if (k->done)
			k->done(field);
		else if (k->parse == config_parse_string || k->parse == config_parse_path)
			*(char **)field = mfree(*(char **)field);
		else if (k->parse == config_parse_list)
			*(char ***)field = strv_free(*(char ***)field);
		else if (k->parse == config_parse_table)
			config_table_done(k->table, field);
	}
}

/* One device kind of reset-when-idle, as its bit. */
static int parse_kind_bit(struct config_ctx *x, size_t line, const char *text, unsigned *bits)
{
	int k = xpu_kind_from_string(text);

	if (k < 0)
		return fail(x->error, line,
			    "reset-when-idle: '%s' is not a device kind (gpu, accel, fpga); write "
			    "a list of kinds such as [gpu, accel], all or none",
			    text);
	*bits |= CONFIG_KIND_BIT(k);
	return 0;
}

/* "reset-when-idle: [gpu, accel]", "reset-when-idle: gpu", "all" or "none". */
static int parse_reset_when_idle(struct config_ctx *x, const struct config_key *k,
				 const struct config_value *value, void *field)
{
	const yaml_node_t *v = node_yaml(value->node);
	size_t line = value->line;
	unsigned *ret = field;
	const char *text = node_text(v);
	unsigned bits = 0;
	int r;

	if (text && streq(text, "all")) {
		*ret = CONFIG_ALL_KINDS;
		return 0;
	}
	if (text && streq(text, "none")) {
		*ret = 0;
		return 0;
	}
	if (text) {
		r = parse_kind_bit(x, line, text, &bits);
		if (r >= 0)
			*ret = bits;
		return r;
	}
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(x->error, line,
			    "reset-when-idle: expected a list of device kinds such as [gpu, "
			    "accel], all or none, not %s",
			    node_shape(v));
	for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
	     i++) {
		yaml_node_t *n = yaml_document_get_node(&x->doc, *i);

		if (!node_text(n))
			return fail(x->error, node_line(n),
				    "reset-when-idle: expected a device kind (gpu, accel, fpga), "
				    "not %s",
				    node_shape(n));
		r = parse_kind_bit(x, node_line(n), node_text(n), &bits);
		if (r < 0)
			return r;
	}
	*ret = bits;
	return 0;
}

static void policy_field_done(void *field)
{
	policy_done(field);
}

static const char *const enforce_devices_words[] = CONFIG_ENFORCE_DEVICES_WORDS;

static const struct config_key enforce_keys[] = {
	CONFIG_KEY_PATH("cgroup-root", struct config_enforce, cgroup_root,
			.expect = "the absolute path of a cgroup2 directory delegated to xpud"),
	CONFIG_KEY_PATH("devices-v1-root", struct config_enforce, devices_v1_root,
			.expect = "the absolute path of a directory of the v1 devices controller"),
	CONFIG_KEY_ENUM("devices", struct config_enforce, devices, .words = enforce_devices_words,
			.expect = "auto, bpf or devices-v1"),
	{},
};

static int convert_metrics_interval(const struct config_key *k, const char *text, void *field)
{
	uint64_t u = 0;

	if (parse_duration(text, &u) < 0 || u < 1000000 || u > 24ULL * 3600 * 1000000)
		return -EINVAL;
	*(uint64_t *)field = u;
	return 0;
}

static int parse_metrics_interval(struct config_ctx *x, const struct config_key *k,
				  const struct config_value *v, void *field)
{
	return parse_scalar(x, k, v, field, convert_metrics_interval,
			    "a duration from 1s to 24h such as 15s", false);
}

static const struct config_key metrics_keys[] = {
	CONFIG_KEY_STRING("listen", struct config_metrics, listen, .valid = listen_address_valid,
			  .expect = "an address such as 127.0.0.1:9400, [::1]:9400 or "
				    "unix:/run/xpud/metrics.sock"),
	CONFIG_KEY_CUSTOM("interval", parse_metrics_interval, struct config_metrics,
			  interval_usec),
	{},
};

/* A shape's name, as a label value and in messages: 1-63 of [A-Za-z0-9._-]. */
static bool shape_name_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= 63 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static const struct config_key shape_keys[] = {
	CONFIG_KEY_STRING("name", struct config_shape, name, .valid = shape_name_valid,
			  .expect = "a name of 1 to 63 letters, digits, '.', '_' or '-'"),
	CONFIG_KEY_STRING("resource", struct config_shape, resource, .valid = resource_name_valid,
			  .expect = "a resource name such as example.com/gpu"),
	CONFIG_KEY_UNSIGNED("count", struct config_shape, count, 1, 100000,
			    .expect = "a number of slices per workload"),
	CONFIG_KEY_BOOL("numa-local", struct config_shape, numa_local),
	CONFIG_KEY_BOOL("connected", struct config_shape, connected),
	CONFIG_KEY_SIZE("memory", struct config_shape, memory_bytes),
	{},
};

/* Each shape costs a fit on every render of the metrics page: a bound keeps that small. */
#define CONFIG_SHAPES_MAX 64

void config_shapes_done(struct config_shapes *s)
{
	for (size_t i = 0; i < s->n; i++)
		config_table_done(shape_keys, &s->items[i]);
	s->items = mfree(s->items);
	s->n = 0;
}

static void shapes_field_done(void *field)
{
	config_shapes_done(field);
}

int config_shapes_copy(const struct config_shape *src, size_t n, struct config_shapes *ret)
{
	_cleanup_(config_shapes_done) struct config_shapes c = {};

	c.items = calloc(n ?: 1, sizeof(*c.items));
	if (!c.items)
		return -ENOMEM;
	for (; c.n < n; c.n++) {
		struct config_shape *d = &c.items[c.n];

		*d = src[c.n];
		d->name = d->resource = NULL;
		if (config_set_string(&d->name, src[c.n].name) < 0 ||
		    config_set_string(&d->resource, src[c.n].resource) < 0) {
			c.n++; /* freed with the others */
			return -ENOMEM;
		}
	}
	config_shapes_done(ret);
	*ret = c;
	c = (struct config_shapes){};
	return 0;
}

/* "shapes: [{name: llm-70b, resource: nvidia.com/gpu, count: 4, numa-local: true}, ...]" */
static int parse_shapes(struct config_ctx *x, const struct config_key *k,
			const struct config_value *v, void *field)
{
	const yaml_node_t *n = node_yaml(v->node);
	_cleanup_(config_shapes_done) struct config_shapes l = {};
	size_t size;
	int r;

	if (n->type == YAML_SCALAR_NODE && isempty(node_text(n)))
		size = 0; /* "shapes:" with every shape commented out */
	else if (n->type != YAML_SEQUENCE_NODE)
		return fail(x->error, v->line,
			    "%s: expected a list of shapes such as [{name: llm-70b, resource: "
			    "example.com/gpu, count: 4, numa-local: true}], not %s",
			    v->key, node_shape(n));
	else
		size = config_node_size(v->node);
	if (size > CONFIG_SHAPES_MAX)
		return fail(x->error, v->line, "%s: %zu shapes, more than the %d allowed", v->key,
			    size, CONFIG_SHAPES_MAX);
	l.items = calloc(size ?: 1, sizeof(*l.items));
	if (!l.items)
		return -ENOMEM;
	for (size_t i = 0; i < size; i++) {
		const struct config_node *item = config_node_item(x, v->node, i);
		struct config_shape *s = &l.items[l.n++];
		const struct config_value iv = {
			.key = v->key, .line = config_node_line(item), .node = item};

		*s = (struct config_shape){.count = 1};
		if (config_node_kind(item) != CONFIG_NODE_MAPPING)
			return fail(x->error, iv.line,
				    "%s: expected a shape such as {name: llm-70b, resource: "
				    "example.com/gpu, count: 4}, not %s",
				    v->key, config_node_shape(item));
		r = parse_mapping(x, &iv, " in a shape", shape_keys, s);
		if (r < 0)
			return r;
		if (!s->name || !s->resource)
			return fail(x->error, iv.line, "%s: a shape needs a %s", v->key,
				    !s->name ? "name" : "resource");
		for (size_t j = 0; j + 1 < l.n; j++)
			if (streq(l.items[j].name, s->name))
				return fail(x->error, iv.line, "%s: shape '%s' is given twice",
					    v->key, s->name);
	}
	config_shapes_done(field);
	*(struct config_shapes *)field = l;
	l = (struct config_shapes){};
	return 0;
}

/* The core's keys, at the top level of the file. */
static const struct config_key core_keys[] = {
	CONFIG_KEY_PATH("socket", struct config, socket_path),
	CONFIG_KEY_STRING("socket-group", struct config, socket_group),
	CONFIG_KEY_MODE("socket-mode", struct config, socket_mode),
	CONFIG_KEY_STRING("admin-group", struct config, admin_group),
	CONFIG_KEY_DURATION("health-interval", struct config, health_interval_usec,
			    .expect = "a duration such as 30s"),
	CONFIG_KEY_ENUM("log-level", struct config, log_level, .lookup = log_level_from_string,
			.expect = "debug, info, notice, warning, err, crit, alert, emerg or 0-7"),
	CONFIG_KEY_CUSTOM("partitions", config_parse_partitions, struct config, policy,
			  .done = policy_field_done),
	CONFIG_KEY_PATH("kubelet-dir", struct config, kubelet_dir),
	CONFIG_KEY_PATH("kubelet-pre-start-hook", struct config, pre_start_hook,
			.expect = "the absolute path of a program"),
	CONFIG_KEY_PATH("cdi-dir", struct config, cdi_dir),
	CONFIG_KEY_PATH("nfd-dir", struct config, nfd_dir),
	CONFIG_KEY_UNSIGNED("health-suspect-after", struct config, health.suspect_after, 1, 1000,
			    .expect = "a number of failed probes"),
	CONFIG_KEY_DURATION("health-probation", struct config, health.probation_usec,
			    .expect = "a duration such as 60s"),
	CONFIG_KEY_DURATION("repartition-timeout", struct config, repartition_timeout_usec,
			    .expect = "a duration such as 10m (0: wait forever)"),
	CONFIG_KEY_CUSTOM("reset-when-idle", parse_reset_when_idle, struct config,
			  reset_when_idle),
	CONFIG_KEY_TABLE("enforce", struct config, enforce, enforce_keys),
	CONFIG_KEY_TABLE("metrics", struct config, metrics, metrics_keys),
	CONFIG_KEY_CUSTOM("shapes", parse_shapes, struct config, shapes,
			  .done = shapes_field_done),
	{},
};

void config_init(struct config *c)
{
	*c = (struct config){
		.socket_mode = 0660,
		.health_interval_usec = 30 * 1000000ULL,
		.health = HEALTH_POLICY_DEFAULT,
		.repartition_timeout_usec = CONFIG_REPARTITION_TIMEOUT_USEC,
		.log_level = -1,
		.metrics.interval_usec = CONFIG_METRICS_INTERVAL_USEC,
	};
}

void config_init_sections(struct config *c, const struct config_section *const *sections)
{
	config_init(c);
	c->sections = sections;
}

void config_done(struct config *c)
{
	for (size_t i = 0; c->section_data && c->sections[i]; i++) {
		if (c->section_data[i])
			config_table_done(c->sections[i]->keys, c->section_data[i]);
		free(c->section_data[i]);
	}
	free(c->section_data);
	config_table_done(core_keys, c);
	strv_free(c->warnings);
	config_init(c);
}

const void *config_section(const struct config *c, const char *name)
{
	for (size_t i = 0; c && c->section_data && c->sections[i]; i++)
		if (streq(c->sections[i]->name, name))
			return c->section_data[i];
	return NULL;
}

/* Every section's struct, with its defaults, before the file's keys fill them. */
static int sections_new(struct config *c)
{
	size_t n = 0;

	if (c->section_data || !c->sections)
		return 0;
	while (c->sections[n])
		n++;
	c->section_data = calloc(n + 1, sizeof(void *));
	if (!c->section_data)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c->section_data[i] = calloc(1, c->sections[i]->size ?: 1);
		if (!c->section_data[i])
			return -ENOMEM;
		if (c->sections[i]->init)
			c->sections[i]->init(c->section_data[i]);
	}
	return 0;
}

/* The line of @key in mapping @section of the root, or 0 when it is not there. */
static size_t section_key_line(struct config_ctx *x, const yaml_node_t *root, const char *section,
			       const char *key)
{
	MAPPING_FOREACH(p, root) {
		const yaml_node_t *v = yaml_document_get_node(&x->doc, p->value);

		if (!streq_ptr(node_text(yaml_document_get_node(&x->doc, p->key)), section) ||
		    v->type != YAML_MAPPING_NODE)
			continue;
		MAPPING_FOREACH(q, v) {
			const yaml_node_t *k = yaml_document_get_node(&x->doc, q->key);

			if (streq_ptr(node_text(k), key))
				return node_line(k);
		}
	}
	return 0;
}

/*
 * An old top-level spelling of a section's key: parsed as that key (messages keep the old name),
 * with a warning that names the new spelling. Giving both spellings is an error: which one is
 * meant would depend on the order.
 */
static int parse_alias(struct config_ctx *x, const yaml_node_t *root,
		       const struct config_section *s, const struct config_alias *a,
		       const struct config_value *v, void *data)
{
	const struct config_key *k = table_find(s->keys, a->key);
	size_t other;

	if (!k)
		return -EINVAL; /* a section's alias names one of its keys */
	other = section_key_line(x, root, s->name, a->key);
	if (other)
		return fail(x->error, v->line,
			    "'%s' is the old spelling of %s: {%s: ...}, which line %zu gives too",
			    v->key, s->name, a->key, other);
	if (strv_extendf(x->warnings, "line %zu: '%s' is deprecated; write it as %s: {%s: ...}",
			 v->line, v->key, s->name, a->key) < 0)
		return -ENOMEM;
	return k->parse(x, k, v, (char *)data + k->offset);
}

/* The section that top-level @key names, or of which it is an old spelling (*ret_alias), with
 * its parsed struct; NULL when @key is neither. */
static const struct config_section *section_find(const struct config *c, const char *key,
						 void **ret_data,
						 const struct config_alias **ret_alias)
{
	for (size_t i = 0; c->sections && c->sections[i]; i++) {
		const struct config_section *s = c->sections[i];

		*ret_data = c->section_data[i];
		*ret_alias = NULL;
		if (streq(s->name, key))
			return s;
		for (const struct config_alias *a = s->aliases; a && a->old; a++)
			if (streq(a->old, key)) {
				*ret_alias = a;
				return s;
			}
	}
	return NULL;
}

static int parse_document(struct config_ctx *x, struct config *c)
{
	yaml_node_t *root = yaml_document_get_root_node(&x->doc);

	if (!root)
		return 0; /* an empty file, or only comments */
	if (root->type != YAML_MAPPING_NODE)
		return fail(x->error, node_line(root), "expected a mapping of keys to values");
	MAPPING_FOREACH(p, root) {
		const struct config_alias *a = NULL;
		const struct config_section *s;
		const struct config_key *k;
		_cleanup_free_ char *where = NULL;
		struct config_value v;
		void *data = NULL;
		int r;

		r = mapping_key(x, root, p, "", &v);
		if (r < 0)
			return r;
		k = table_find(core_keys, v.key);
		if (k)
			r = k->parse(x, k, &v, (char *)c + k->offset);
		else if (!(s = section_find(c, v.key, &data, &a)))
			r = unknown_key(x, v.line, v.key, "", core_keys, c->sections);
		else if (a)
			r = parse_alias(x, root, s, a, &v, data);
		else if (asprintf(&where, " in %s", v.key) < 0)
			return -ENOMEM;
		else
			r = parse_mapping(x, &v, where, s->keys, data);
		if (r < 0)
			return r;
	}
	return 0;
}

static int yaml_fail(yaml_parser_t *parser, char **ret_error)
{
	return fail(ret_error, parser->problem_mark.line + 1, "%s",
		    parser->problem ?: "malformed YAML");
}

/*
 * libyaml's loader resolves aliases silently and loads one document at a time, so one pass
 * over the events comes first: it refuses aliases, a second document and deep nesting, with
 * their lines.
 */
static int yaml_prescan(const char *text, size_t len, char **ret_error)
{
	yaml_parser_t parser;
	int depth = 0, documents = 0, r = 0;
	bool done = false;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && r >= 0) {
		yaml_event_t ev;
		size_t line;

		if (!yaml_parser_parse(&parser, &ev)) {
			r = yaml_fail(&parser, ret_error);
			break;
		}
		line = ev.start_mark.line + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++documents > 1)
				r = fail(ret_error, line, "only one YAML document is allowed");
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (++depth > CONFIG_MAX_DEPTH)
				r = fail(ret_error, line, "nested more than %d levels deep",
					 CONFIG_MAX_DEPTH);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			break;
		case YAML_ALIAS_EVENT:
			r = fail(ret_error, line, "aliases are not supported");
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return r;
}

int config_yaml_load(struct config_ctx *x, const char *text, size_t len)
{
	yaml_parser_t parser;
	int r;

	r = yaml_prescan(text, len, x->error);
	if (r < 0)
		return r;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	r = 0;
	if (!yaml_parser_load(&parser, &x->doc))
		r = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : yaml_fail(&parser, x->error);
	yaml_parser_delete(&parser);
	return r;
}

int config_parse(const char *text, size_t len, struct config *c, char **ret_error)
{
	struct config_ctx x = { .error = ret_error, .warnings = &c->warnings };
	int r;

	r = sections_new(c);
	if (r < 0)
		return r;
	r = config_yaml_load(&x, text, len);
	if (r < 0)
		return r;
	r = parse_document(&x, c);
	yaml_document_delete(&x.doc);
	return r < 0 ? r : 0;
}

int config_load(const char *path, struct config *c, char **ret_error)
{
	_cleanup_free_ char *text = NULL, *err = NULL;
	size_t n;
	int r;

	r = read_attr_at(AT_FDCWD, path, CONFIG_MAX_BYTES, &text);
	if (r < 0)
		return r;
	n = strv_length(c->warnings);
	r = config_parse(text, strlen(text), c, &err);
	if (r < 0 && ret_error && err && asprintf(ret_error, "%s:%s", path, err) < 0)
		return -ENOMEM;
	/* this file's warnings name it, like its errors */
	for (size_t i = n; r >= 0 && c->warnings && c->warnings[i]; i++) {
		char *w = NULL;

		if (asprintf(&w, "%s:%s", path, c->warnings[i]) < 0)
			return -ENOMEM;
		free(c->warnings[i]);
		c->warnings[i] = w;
	}
	return r;
}
