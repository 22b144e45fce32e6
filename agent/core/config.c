// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config.h"
#include "core/rules.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
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

/* "79:reset-gpu, 13:ignore" -> the list. 0 or -EINVAL (with the offending item in *ret_bad). */
static int parse_xid_actions(const char *v, struct xid_action **ret, size_t *ret_n,
			     char **ret_bad)
{
	_cleanup_free_ char *copy = strdup(v);
	_cleanup_free_ struct xid_action *list = NULL;
	char *item, *save = NULL;
	size_t n = 0;

	if (!copy)
		return -ENOMEM;
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *colon, *word;
		unsigned xid;
		int a;

		item += strspn(item, " \t");
		strstrip_trailing(item);
		colon = strchr(item, ':');
		if (!colon)
			goto bad;
		*colon = '\0';
		word = colon + 1 + strspn(colon + 1, " \t");
		a = health_action_from_string(word);
		if (safe_atou(item, &xid) < 0 || xid == 0 || a < 0) {
			*colon = ':';
			goto bad;
		}
		struct xid_action *m = realloc(list, (n + 1) * sizeof(*m));

		if (!m)
			return -ENOMEM;
		list = m;
		list[n++] = (struct xid_action){ xid, (enum health_action)a };
	}
	*ret = TAKE_PTR(list);
	*ret_n = n;
	return 0;
bad:
	*ret_bad = strdup(item);
	return -EINVAL;
}

void config_init(struct config *c)
{
	*c = (struct config){
		.socket_mode = 0660,
		.health_interval_usec = 30 * 1000000ULL,
		.health = HEALTH_POLICY_DEFAULT,
		.repartition_timeout_usec = CONFIG_REPARTITION_TIMEOUT_USEC,
		.log_level = -1,
	};
}

void config_done(struct config *c)
{
	free(c->socket_path);
	free(c->kubelet_dir);
	free(c->pre_start_hook);
	free(c->cdi_dir);
	free(c->nfd_dir);
	free(c->socket_group);
	free(c->admin_group);
	free(c->nvml_library);
	free(c->cuda_library);
	free(c->kmod_resource);
	free(c->xid_actions);
	policy_done(&c->policy);
	config_init(c);
}

static int fail_printf(char **ret_error, size_t line, const char *fmt, ...) _printf_(3, 4);
static int fail_printf(char **ret_error, size_t line, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	if (ret_error && asprintf(ret_error, "line %zu: %s", line, msg) < 0)
		return -ENOMEM;
	return -EINVAL;
}
/* Says where the static analyzer can see it (it does not follow variadic functions) that fail()
 * returns a negative errno, so that callers' "return fail(...)" paths are known to fail. */
#define fail(...)                                                                                  \
	({                                                                                         \
		int _f_ = fail_printf(__VA_ARGS__);                                                \
		_f_ < 0 ? _f_ : -EINVAL;                                                           \
	})

static int set_string(char **field, const char *v)
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

/* The loaded document, and where errors go. */
struct yaml_ctx {
	yaml_document_t doc;
	char **error;
};

static size_t node_line(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

/* The text of a scalar node; NULL for a list or mapping. */
static const char *node_text(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *node_shape(const yaml_node_t *n)
{
	return n->type == YAML_SEQUENCE_NODE ? "a list" : n->type == YAML_MAPPING_NODE ? "a mapping"
											 : "a value";
}

/* p names the loop variable: it cannot take parentheses */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define MAPPING_FOREACH(p, n)                                                                      \
	for (yaml_node_pair_t *p = (n)->data.mapping.pairs.start; p < (n)->data.mapping.pairs.top; \
	     p++)
/* NOLINTEND(bugprone-macro-parentheses) */

static const char *const top_keys[] = {
	"socket",	"socket-group",	 "socket-mode",	 "admin-group",	       "health-interval",
	"log-level",	"nvml-library", "cuda-library", "nvidia-xid-actions", "partitions",
	"kmod-resource", "kubelet-dir", "kubelet-pre-start-hook", "cdi-dir", "nfd-dir",
	"health-suspect-after", "health-probation", "repartition-timeout", "reset-when-idle",
	NULL,
};
/* The keys of a partition rule: these, and each partition scheme's name and enable key. A
 * layout (xpuctl repartition) is a rule without 'match': it names its device itself. */
static const char *const rule_fixed_keys[] = {
	"match", "whole", "replicas", "memory-shares", NULL,
};
static const char *const selector_keys[] = { "vendor", "model", "pci", "uuid", NULL };
static const char *const shares_keys[] = { "count", "size", "compute", NULL };

/*
 * One key of a mapping: a single value, one of @known, not given before in the same mapping.
 * @where names the mapping in messages (" in a partition rule"; "" at the top level). The
 * duplicate check compares with the earlier keys only, which are all known, so it is bounded.
 */
static int pair_key(struct yaml_ctx *x, const yaml_node_t *map, const yaml_node_pair_t *p,
		    const char *where, const char *const *known, const char **ret_key,
		    size_t *ret_line, yaml_node_t **ret_value)
{
	yaml_node_t *k = yaml_document_get_node(&x->doc, p->key);
	const char *key = node_text(k);

	if (!key)
		return fail(x->error, node_line(k), "expected a key%s, not %s", where, node_shape(k));
	if (!strv_contains((char *const *)known, key)) {
		_cleanup_free_ char *list = strv_join((char *const *)known, ", ");

		if (!list)
			return -ENOMEM;
		return fail(x->error, node_line(k), "unknown key '%s'%s (known: %s)", key, where,
			    list);
	}
	for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
		if (streq_ptr(node_text(yaml_document_get_node(&x->doc, q->key)), key))
			return fail(x->error, node_line(k), "'%s' is given twice", key);
	*ret_key = key;
	*ret_line = node_line(k);
	*ret_value = yaml_document_get_node(&x->doc, p->value);
	return 0;
}

static int value_text(struct yaml_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		      const char **ret)
{
	if (v->type != YAML_SCALAR_NODE)
		return fail(x->error, line, "'%s': expected a single value, not %s", key,
			    node_shape(v));
	*ret = node_text(v);
	return 0;
}

static int apply_key(struct config *c, const char *key, const char *value, size_t line,
		     char **ret_error)
{
	if (isempty(value))
		return fail(ret_error, line, "%s: a value is required", key);
	if (streq(key, "socket")) {
		if (value[0] != '/')
			return fail(ret_error, line, "socket: expected an absolute path, got '%s'",
				    value);
		return set_string(&c->socket_path, value);
	}
	if (streq(key, "kubelet-dir")) {
		if (value[0] != '/')
			return fail(ret_error, line,
				    "kubelet-dir: expected an absolute path, got '%s'", value);
		return set_string(&c->kubelet_dir, value);
	}
	if (streq(key, "kubelet-pre-start-hook")) {
		if (value[0] != '/')
			return fail(ret_error, line,
				    "kubelet-pre-start-hook: expected the absolute path of a program, "
				    "got '%s'",
				    value);
		return set_string(&c->pre_start_hook, value);
	}
	if (streq(key, "cdi-dir") || streq(key, "nfd-dir")) {
		if (value[0] != '/')
			return fail(ret_error, line, "%s: expected an absolute path, got '%s'", key,
				    value);
		return set_string(streq(key, "cdi-dir") ? &c->cdi_dir : &c->nfd_dir, value);
	}
	if (streq(key, "socket-group"))
		return set_string(&c->socket_group, value);
	if (streq(key, "admin-group"))
		return set_string(&c->admin_group, value);
	if (streq(key, "nvml-library"))
		return set_string(&c->nvml_library, value);
	if (streq(key, "cuda-library"))
		return set_string(&c->cuda_library, value);
	if (streq(key, "kmod-resource")) {
		if (!resource_name_valid(value))
			return fail(ret_error, line,
				    "kmod-resource: '%s' is not a resource name (vendor.domain/name)",
				    value);
		return set_string(&c->kmod_resource, value);
	}
	if (streq(key, "nvidia-xid-actions")) {
		_cleanup_free_ char *bad = NULL;
		struct xid_action *list = NULL;
		size_t n = 0;
		int r;

		r = parse_xid_actions(value, &list, &n, &bad);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return fail(ret_error, line,
				    "nvidia-xid-actions: '%s' is not XID:ACTION (actions: ignore, "
				    "app-error, restart-app, reset-gpu, reboot-node)",
				    bad ?: value);
		free(c->xid_actions);
		c->xid_actions = list;
		c->n_xid_actions = n;
		return 0;
	}
	if (streq(key, "socket-mode")) {
		unsigned long m = 0;

		if (isempty(value) || strlen(value) > 4 ||
		    strspn(value, "01234567") != strlen(value) || (m = strtoul(value, NULL, 8)) > 0777)
			return fail(ret_error, line,
				    "socket-mode: expected octal permission bits such as 0660, got '%s'",
				    value);
		c->socket_mode = (unsigned)m;
		return 0;
	}
	if (streq(key, "health-interval")) {
		if (parse_duration(value, &c->health_interval_usec) < 0)
			return fail(ret_error, line,
				    "health-interval: expected a duration such as 30s, got '%s'",
				    value);
		return 0;
	}
	if (streq(key, "health-suspect-after")) {
		unsigned n = 0;

		if (safe_atou(value, &n) < 0 || n < 1 || n > 1000)
			return fail(ret_error, line,
				    "health-suspect-after: expected a number of failed probes from 1 "
				    "to 1000, got '%s'",
				    value);
		c->health.suspect_after = n;
		return 0;
	}
	if (streq(key, "repartition-timeout")) {
		if (parse_duration(value, &c->repartition_timeout_usec) < 0)
			return fail(ret_error, line,
				    "repartition-timeout: expected a duration such as 10m (0: wait "
				    "forever), got '%s'",
				    value);
		return 0;
	}
	if (streq(key, "health-probation")) {
		if (parse_duration(value, &c->health.probation_usec) < 0)
			return fail(ret_error, line,
				    "health-probation: expected a duration such as 60s, got '%s'",
				    value);
		return 0;
	}
	if (streq(key, "log-level")) {
		int l = log_level_from_string(value);

		if (l < 0)
			return fail(ret_error, line,
				    "log-level: expected debug, info, notice, warning, err, crit, "
				    "alert, emerg or 0-7, got '%s'",
				    value);
		c->log_level = l;
		return 0;
	}
	return -EINVAL; /* pair_key() lets only known keys through */
}

/* "match:": "all", or a mapping of vendor, model, pci and uuid (all given must match). */
static int parse_selector(struct yaml_ctx *x, size_t line, const yaml_node_t *v,
			  struct selector *s)
{
	const char *text = node_text(v);

	if (v->type == YAML_SCALAR_NODE && streq(text, "all")) {
		s->all = true;
		return 0;
	}
	if (v->type != YAML_MAPPING_NODE)
		return fail(x->error, line,
			    "match: expected 'all' or a mapping of vendor, model, pci and uuid, "
			    "got %s%s%s",
			    text ? "'" : "", text ?: node_shape(v), text ? "'" : "");
	if (v->data.mapping.pairs.top == v->data.mapping.pairs.start)
		return fail(x->error, line,
			    "match: an empty selector matches no device; name vendor, model, pci or "
			    "uuid, or write 'match: all'");
	MAPPING_FOREACH(p, v) {
		const char *key, *val = NULL;
		yaml_node_t *n;
		size_t kline;
		int r;

		r = pair_key(x, v, p, " in match", selector_keys, &key, &kline, &n);
		if (r < 0)
			return r;
		r = value_text(x, key, kline, n, &val);
		if (r < 0)
			return r;
		if (streq(key, "vendor")) {
			if (isempty(val) || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
						    strlen(val))
				return fail(x->error, kline,
					    "vendor: expected a lower-case vendor name, as devices "
					    "show it, got '%s'",
					    val);
			r = set_string(&s->vendor, val);
		} else if (streq(key, "pci")) {
			char addr[13];

			if (parse_pci_address(val, addr) < 0)
				return fail(x->error, kline,
					    "pci: expected a PCI address such as 0000:db:00.0, got "
					    "'%s'",
					    val);
			r = set_string(&s->pci, addr);
		} else {
			if (!string_is_printable(val))
				return fail(x->error, kline, "%s: expected %s, got '%s'", key,
					    streq(key, "model")
						    ? "a model name or pattern, as devices show it"
						    : "a device UUID such as GPU-...",
					    val);
			r = set_string(streq(key, "model") ? &s->model : &s->uuid, val);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* A whole number from 1 to OFFER_MAX_COUNT. */
static int parse_count(struct yaml_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		       unsigned *ret)
{
	const char *val = NULL;
	unsigned u;
	int r;

	r = value_text(x, key, line, v, &val);
	if (r < 0)
		return r;
	if (safe_atou(val, &u) < 0 || u < 1 || u > OFFER_MAX_COUNT)
		return fail(x->error, line, "%s: expected a whole number from 1 to %d, got '%s'",
			    key, OFFER_MAX_COUNT, val);
	*ret = u;
	return 0;
}

/* "memory-shares: {count: 4, size: 10GiB, compute: 0.25}"; size and compute optional. */
static int parse_shares(struct yaml_ctx *x, size_t line, const yaml_node_t *v, struct offer *o)
{
	if (v->type != YAML_MAPPING_NODE)
		return fail(x->error, line,
			    "memory-shares: expected a mapping such as {count: 4, size: 10GiB, "
			    "compute: 0.25}, not %s",
			    node_shape(v));
	MAPPING_FOREACH(p, v) {
		const char *key, *val = NULL;
		yaml_node_t *n;
		size_t kline;
		int r;

		r = pair_key(x, v, p, " in memory-shares", shares_keys, &key, &kline, &n);
		if (r < 0)
			return r;
		if (streq(key, "count")) {
			r = parse_count(x, "count", kline, n, &o->count);
			if (r < 0)
				return r;
			continue;
		}
		r = value_text(x, key, kline, n, &val);
		if (r < 0)
			return r;
		if (streq(key, "size")) {
			if (parse_size(val, &o->share_bytes) < 0 || o->share_bytes == 0)
				return fail(x->error, kline,
					    "size: expected a size with a unit such as 10GiB or 512MiB "
					    "(B, KiB, MiB, GiB, TiB), got '%s'",
					    val);
			if (o->share_bytes < OFFER_MIN_SHARE_BYTES)
				return fail(x->error, kline,
					    "size: a memory share must be at least 1MiB (limits are "
					    "enforced in whole MiB), got '%s'",
					    val);
		} else {
			char *end = NULL;

			errno = 0;
			o->compute = isempty(val) ? 0 : strtod(val, &end);
			if (!end || *end || errno != 0 || !(o->compute > 0 && o->compute <= 1))
				return fail(x->error, kline,
					    "compute: expected a fraction of the device greater than 0 "
					    "and at most 1, such as 0.25, got '%s'",
					    val);
		}
	}
	if (o->count == 0)
		return fail(x->error, line, "memory-shares: 'count' is required");
	if (o->compute * o->count > 1.0 + 1e-9)
		return fail(x->error, line,
			    "memory-shares: %u shares of compute %g add up to more than the device "
			    "(count x compute must be at most 1)",
			    o->count, o->compute);
	return 0;
}

/* A list scheme's layout: "<key>: all-<profile>" (stored as that one element) or a list of
 * profiles ("[3g.40gb, 2g.20gb]"). */
static int parse_layout_list(struct yaml_ctx *x, const char *key, size_t line,
			     const yaml_node_t *v, struct offer *o)
{
	const struct partition_scheme *sc = o->scheme;
	const char *text = node_text(v);

	if (text && strncmp(text, "all-", 4) == 0 && sc->profile_valid(text + 4))
		return strv_extend(&o->layout, text);
	if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top ==
						     v->data.sequence.items.start)
		return fail(x->error, line,
			    "%s: expected all-<profile> (such as all-%s) or a list of profiles such "
			    "as %s, got %s%s%s",
			    key, sc->example_profile, sc->example_list, text ? "'" : "",
			    text ?: node_shape(v), text ? "'" : "");
	if (v->data.sequence.items.top - v->data.sequence.items.start > OFFER_MAX_COUNT)
		return fail(x->error, line, "%s: at most %d instances", key, OFFER_MAX_COUNT);
	for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
	     i++) {
		yaml_node_t *n = yaml_document_get_node(&x->doc, *i);
		const char *p = node_text(n);

		if (!p || !sc->profile_valid(p))
			return fail(x->error, node_line(n),
				    "%s: '%s' is not a %s profile (%s, such as %s)", key,
				    p ?: node_shape(n), sc->label, sc->profile_form,
				    sc->example_profile);
		if (strv_extend(&o->layout, p) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* A mode scheme's layout: one of its modes. */
static int parse_layout_mode(struct yaml_ctx *x, const char *key, size_t line,
			     const yaml_node_t *v, struct offer *o)
{
	const char *const *modes = o->scheme->modes;
	_cleanup_free_ char *head = NULL;
	const char *val = NULL;
	size_t n = strv_length((char *const *)modes);
	int r;

	r = value_text(x, key, line, v, &val);
	if (r < 0)
		return r;
	if (strv_contains((char *const *)modes, val))
		return strv_extend(&o->layout, val);
	for (size_t i = 0; i + 1 < n; i++) {
		char *s;

		if (asprintf(&s, "%s%s%s", head ?: "", head ? ", " : "", modes[i]) < 0)
			return -ENOMEM;
		free(head);
		head = s;
	}
	return fail(x->error, line, "%s: expected %s%s%s, got '%s'", key, head ?: "",
		    head ? " or " : "", n ? modes[n - 1] : "", val);
}

static int parse_bool(struct yaml_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		      bool *ret)
{
	const char *val = NULL;
	int r;

	r = value_text(x, key, line, v, &val);
	if (r < 0)
		return r;
	if (!streq(val, "true") && !streq(val, "false"))
		return fail(x->error, line, "%s: expected true or false, got '%s'", key, val);
	*ret = streq(val, "true");
	return 0;
}

/* The value of one offer key of a rule, into @o (whose kind is set). */
static int parse_offer(struct yaml_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		       struct offer *o)
{
	bool whole;
	int r;

	switch (o->kind) {
	case OFFER_WHOLE:
		r = parse_bool(x, key, line, v, &whole);
		if (r >= 0 && !whole)
			return fail(x->error, line,
				    "whole: expected true (a rule must offer something)");
		return r;
	case OFFER_REPLICAS:
		return parse_count(x, key, line, v, &o->count);
	case OFFER_MEMORY_SHARES:
		return parse_shares(x, line, v, o);
	case OFFER_PARTITIONS:
		return o->scheme->modes ? parse_layout_mode(x, key, line, v, o)
					: parse_layout_list(x, key, line, v, o);
	default:
		return -EINVAL;
	}
}

/* The keys of a rule (@is_layout: without 'match'), NULL-terminated, borrowed strings. */
static const char **rule_keys(bool is_layout)
{
	const struct partition_scheme *const *sc = partition_schemes();
	size_t n = 0, k = 0;
	const char **keys;

	while (sc[n])
		n++;
	keys = calloc(ELEMENTSOF(rule_fixed_keys) + 2 * n + 1, sizeof(*keys));
	if (!keys)
		return NULL;
	for (const char *const *f = rule_fixed_keys; *f; f++)
		if (!is_layout || !streq(*f, "match"))
			keys[k++] = *f;
	for (size_t i = 0; i < n; i++) {
		keys[k++] = sc[i]->name;
		if (sc[i]->enable_key)
			keys[k++] = sc[i]->enable_key;
	}
	keys[k] = "resource";
	return keys;
}

static int parse_rule(struct yaml_ctx *x, const yaml_node_t *n, struct policy_rule *rule,
		      bool is_layout)
{
	size_t line = node_line(n), offer_line = 0, enable_line = 0;
	const struct partition_scheme *enable_of = NULL;
	_cleanup_free_ const char **keys = rule_keys(is_layout);
	_cleanup_free_ char *kinds = offer_kinds_list();
	const char *offer_key = NULL;
	bool has_match = false;

	if (!keys || !kinds)
		return -ENOMEM;
	rule->line = (unsigned)line;
	if (n->type != YAML_MAPPING_NODE)
		return fail(x->error, line,
			    "partitions: each rule must be a mapping with 'match' and one of %s, not "
			    "%s",
			    kinds, node_shape(n));
	MAPPING_FOREACH(p, n) {
		const char *key, *val = NULL;
		yaml_node_t *v;
		size_t kline;
		int r;

		r = pair_key(x, n, p, is_layout ? " in a layout" : " in a partition rule", keys,
			     &key, &kline, &v);
		if (r < 0)
			return r;
		if (streq(key, "match")) {
			has_match = true;
			r = parse_selector(x, kline, v, &rule->match);
		} else if (partition_scheme_by_enable_key(key)) {
			enable_of = partition_scheme_by_enable_key(key);
			enable_line = kline;
			r = parse_bool(x, key, kline, v, &rule->offer.enable);
		} else if (streq(key, "resource")) {
			r = value_text(x, key, kline, v, &val);
			if (r >= 0 && !resource_name_valid(val))
				return fail(x->error, kline,
					    "resource: expected a resource name such as "
					    "example.com/gpu-shared (a lower-case domain, '/', then "
					    "letters, digits, '.', '_' or '-'), got '%s'",
					    val);
			if (r >= 0)
				r = set_string(&rule->offer.resource, val);
		} else {
			if (offer_key)
				return fail(x->error, kline,
					    "%s: a rule has exactly one offer, and '%s' was given on "
					    "line %zu",
					    key, offer_key, offer_line);
			offer_key = key;
			offer_line = kline;
			rule->offer.kind = offer_kind_from_string(key, &rule->offer.scheme);
			r = parse_offer(x, key, kline, v, &rule->offer);
		}
		if (r < 0)
			return r;
	}
	if (!has_match && !is_layout)
		return fail(x->error, line,
			    "a partition rule needs 'match' ('all', or a mapping of vendor, model, "
			    "pci and uuid)");
	if (!offer_key)
		return fail(x->error, line, "a partition rule needs one offer: %s", kinds);
	if (enable_of && rule->offer.scheme != enable_of)
		return fail(x->error, enable_line, "%s: only applies to a rule with '%s'",
			    enable_of->enable_key, enable_of->name);
	return 0;
}

static int parse_partitions(struct yaml_ctx *x, size_t line, const yaml_node_t *v,
			    struct policy *ret)
{
	struct policy pol = {};
	size_t n;

	if (v->type != YAML_SEQUENCE_NODE)
		return fail(x->error, line,
			    "partitions: expected a list of rules (\"- match: ...\"), not %s",
			    node_shape(v));
	n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	pol.rules = calloc(n ?: 1, sizeof(*pol.rules));
	if (!pol.rules)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int r;

		/* counted first, so that policy_done() frees a half-parsed rule */
		pol.n_rules++;
		r = parse_rule(x, yaml_document_get_node(&x->doc, v->data.sequence.items.start[i]),
			       &pol.rules[i], false);
		if (r < 0) {
			policy_done(&pol);
			return r;
		}
	}
	policy_done(ret);
	*ret = pol;
	return 0;
}

/* One device kind of reset-when-idle, as its bit. */
static int parse_kind_bit(struct yaml_ctx *x, size_t line, const char *text, unsigned *bits)
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
static int parse_reset_when_idle(struct yaml_ctx *x, size_t line, const yaml_node_t *v,
				 unsigned *ret)
{
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

static int parse_document(struct yaml_ctx *x, struct config *c)
{
	yaml_node_t *root = yaml_document_get_root_node(&x->doc);

	if (!root)
		return 0; /* an empty file, or only comments */
	if (root->type != YAML_MAPPING_NODE)
		return fail(x->error, node_line(root), "expected a mapping of keys to values");
	MAPPING_FOREACH(p, root) {
		const char *key, *val = NULL;
		yaml_node_t *v;
		size_t line;
		int r;

		r = pair_key(x, root, p, "", top_keys, &key, &line, &v);
		if (r < 0)
			return r;
		if (streq(key, "partitions"))
			r = parse_partitions(x, line, v, &c->policy);
		else if (streq(key, "reset-when-idle"))
			r = parse_reset_when_idle(x, line, v, &c->reset_when_idle);
		else {
			r = value_text(x, key, line, v, &val);
			if (r >= 0)
				r = apply_key(c, key, val, line, x->error);
		}
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

/* Loads @text into x->doc, refusing what yaml_prescan() refuses. 0 or -errno. */
static int yaml_load(struct yaml_ctx *x, const char *text, size_t len)
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
	struct yaml_ctx x = { .error = ret_error };
	int r;

	r = yaml_load(&x, text, len);
	if (r < 0)
		return r;
	r = parse_document(&x, c);
	yaml_document_delete(&x.doc);
	return r < 0 ? r : 0;
}

int config_parse_layout(const char *text, size_t len, struct offer *ret, char **ret_error)
{
	struct yaml_ctx x = { .error = ret_error };
	struct policy_rule rule = {};
	yaml_node_t *root;
	int r;

	r = yaml_load(&x, text, len);
	if (r < 0)
		return r;
	root = yaml_document_get_root_node(&x.doc);
	if (!root) {
		_cleanup_free_ char *kinds = offer_kinds_list();

		r = kinds ? fail(ret_error, 1, "a layout needs one offer: %s", kinds) : -ENOMEM;
	} else
		r = parse_rule(&x, root, &rule, true);
	yaml_document_delete(&x.doc);
	if (r >= 0) {
		*ret = rule.offer;
		rule.offer = (struct offer){};
	}
	offer_done(&rule.offer);
	return r < 0 ? r : 0;
}

int config_load(const char *path, struct config *c, char **ret_error)
{
	_cleanup_free_ char *text = NULL, *err = NULL;
	int r;

	r = read_attr_at(AT_FDCWD, path, CONFIG_MAX_BYTES, &text);
	if (r < 0)
		return r;
	r = config_parse(text, strlen(text), c, &err);
	if (r < 0 && ret_error && err && asprintf(ret_error, "%s:%s", path, err) < 0)
		return -ENOMEM;
	return r;
}
