// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The partition policy's part of the configuration: "partitions:" (a list of rules) and a
 * layout (a rule without 'match', as xpuctl repartition sends it). Parsed by hand over the YAML
 * document that config.c loads. Partition schemes come from core/rules.h's list.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config-internal.h"
#include "core/rules.h"
#include "shared/parse.h"
#include "shared/strv.h"

/* The keys of a partition rule: these, each partition scheme's name and enable key, and
 * "resource". A layout (xpuctl repartition) is a rule without 'match': it names its device
 * itself. */
static const char *const rule_fixed_keys[] = {
	"match", "whole", "replicas", "memory-shares", NULL,
};
static const char *const selector_keys[] = { "vendor", "model", "pci", "uuid", NULL };
static const char *const shares_keys[] = { "count", "size", "compute", NULL };

/* "match:": "all", or a mapping of vendor, model, pci and uuid (all given must match). */
static int parse_selector(struct config_ctx *x, size_t line, const yaml_node_t *v,
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

		r = config_yaml_key(x, v, p, " in match", selector_keys, &key, &kline, &n);
		if (r < 0)
			return r;
		r = config_yaml_text(x, key, kline, n, &val);
		if (r < 0)
			return r;
		if (streq(key, "vendor")) {
			if (isempty(val) || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
						    strlen(val))
				return fail(x->error, kline,
					    "vendor: expected a lower-case vendor name, as devices "
					    "show it, got '%s'",
					    val);
			r = config_set_string(&s->vendor, val);
		} else if (streq(key, "pci")) {
			char addr[13];

			if (parse_pci_address(val, addr) < 0)
				return fail(x->error, kline,
					    "pci: expected a PCI address such as 0000:db:00.0, got "
					    "'%s'",
					    val);
			r = config_set_string(&s->pci, addr);
		} else {
			if (!string_is_printable(val))
				return fail(x->error, kline, "%s: expected %s, got '%s'", key,
					    streq(key, "model")
						    ? "a model name or pattern, as devices show it"
						    : "a device UUID such as GPU-...",
					    val);
			r = config_set_string(streq(key, "model") ? &s->model : &s->uuid, val);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* A whole number from 1 to OFFER_MAX_COUNT. */
static int parse_count(struct config_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		       unsigned *ret)
{
	const char *val = NULL;
	unsigned u;
	int r;

	r = config_yaml_text(x, key, line, v, &val);
	if (r < 0)
		return r;
	if (safe_atou(val, &u) < 0 || u < 1 || u > OFFER_MAX_COUNT)
		return fail(x->error, line, "%s: expected a whole number from 1 to %d, got '%s'",
			    key, OFFER_MAX_COUNT, val);
	*ret = u;
	return 0;
}

/* "memory-shares: {count: 4, size: 10GiB, compute: 0.25}"; size and compute optional. */
static int parse_shares(struct config_ctx *x, size_t line, const yaml_node_t *v, struct offer *o)
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

		r = config_yaml_key(x, v, p, " in memory-shares", shares_keys, &key, &kline, &n);
		if (r < 0)
			return r;
		if (streq(key, "count")) {
			r = parse_count(x, "count", kline, n, &o->count);
			if (r < 0)
				return r;
			continue;
		}
		r = config_yaml_text(x, key, kline, n, &val);
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
static int parse_layout_list(struct config_ctx *x, const char *key, size_t line,
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
static int parse_layout_mode(struct config_ctx *x, const char *key, size_t line,
			     const yaml_node_t *v, struct offer *o)
{
	const char *const *modes = o->scheme->modes;
	_cleanup_free_ char *head = NULL;
	const char *val = NULL;
	size_t n = strv_length((char *const *)modes);
	int r;

	r = config_yaml_text(x, key, line, v, &val);
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

static int parse_bool(struct config_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		      bool *ret)
{
	const char *val = NULL;
	int r;

	r = config_yaml_text(x, key, line, v, &val);
	if (r < 0)
		return r;
	if (!streq(val, "true") && !streq(val, "false"))
		return fail(x->error, line, "%s: expected true or false, got '%s'", key, val);
	*ret = streq(val, "true");
	return 0;
}

/* The value of one offer key of a rule, into @o (whose kind is set). */
static int parse_offer(struct config_ctx *x, const char *key, size_t line, const yaml_node_t *v,
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

static int parse_rule(struct config_ctx *x, const yaml_node_t *n, struct policy_rule *rule,
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

		r = config_yaml_key(x, n, p, is_layout ? " in a layout" : " in a partition rule", keys,
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
			r = config_yaml_text(x, key, kline, v, &val);
			if (r >= 0 && !resource_name_valid(val))
				return fail(x->error, kline,
					    "resource: expected a resource name such as "
					    "example.com/gpu-shared (a lower-case domain, '/', then "
					    "letters, digits, '.', '_' or '-'), got '%s'",
					    val);
			if (r >= 0)
				r = config_set_string(&rule->offer.resource, val);
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

int config_parse_partitions(struct config_ctx *x, const struct config_key *k,
			    const struct config_value *value, void *field)
{
	const yaml_node_t *v = node_yaml(value->node);
	size_t line = value->line;
	struct policy *ret = field;
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

int config_parse_layout(const char *text, size_t len, struct offer *ret, char **ret_error)
{
	struct config_ctx x = { .error = ret_error };
	struct policy_rule rule = {};
	yaml_node_t *root;
	int r;

	r = config_yaml_load(&x, text, len);
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

