/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Between config.c (the key tables, the document) and config-policy.c (the partition policy's
 * rules, parsed by hand): the loaded YAML document and the helpers both use. Not for other
 * files: they parse through key tables and the config_node accessors of config.h.
 */
#pragma once

#include <yaml.h>

#include "core/config.h"

struct config_ctx {
	yaml_document_t doc;
	char **error;
	char ***warnings;
};

/* A config_node is a libyaml node; the two names keep libyaml out of config.h. */
static inline const yaml_node_t *node_yaml(const struct config_node *n)
{
	return (const yaml_node_t *)n;
}

static inline const struct config_node *yaml_node(const yaml_node_t *n)
{
	return (const struct config_node *)n;
}

int config_fail_printf(char **ret_error, size_t line, const char *fmt, ...) _printf_(3, 4);
/* Says where the static analyzer can see it (it does not follow variadic functions) that fail()
 * returns a negative errno, so that callers' "return fail(...)" paths are known to fail. */
#define fail(...)                                                                                  \
	({                                                                                         \
		int _f_ = config_fail_printf(__VA_ARGS__);                                         \
		_f_ < 0 ? _f_ : -EINVAL;                                                           \
	})

static inline size_t node_line(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

/* The text of a scalar node; NULL for a list or mapping. */
static inline const char *node_text(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static inline const char *node_shape(const yaml_node_t *n)
{
	return n->type == YAML_SEQUENCE_NODE  ? "a list"
	       : n->type == YAML_MAPPING_NODE ? "a mapping"
					      : "a value";
}

/* Replaces *field with a copy of @v. 0 or -ENOMEM. */
int config_set_string(char **field, const char *v);

/* p names the loop variable: it cannot take parentheses */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define MAPPING_FOREACH(p, n)                                                                      \
	for (yaml_node_pair_t *p = (n)->data.mapping.pairs.start; p < (n)->data.mapping.pairs.top; \
	     p++)
/* NOLINTEND(bugprone-macro-parentheses) */

/*
 * One key of a mapping: one of @known, not given before in the same mapping, with its value.
 * @where names the mapping in messages (" in a partition rule"; "" at the top level).
 */
int config_yaml_key(struct config_ctx *x, const yaml_node_t *map, const yaml_node_pair_t *p,
		    const char *where, const char *const *known, const char **ret_key,
		    size_t *ret_line, yaml_node_t **ret_value);
/* A single value's text (possibly empty); a list or a mapping is refused. */
int config_yaml_text(struct config_ctx *x, const char *key, size_t line, const yaml_node_t *v,
		     const char **ret);

/* Loads @text into x->doc, refusing aliases, a second document and deep nesting with their
 * lines. 0 or -errno; the caller deletes x->doc after a success. */
int config_yaml_load(struct config_ctx *x, const char *text, size_t len);

/* config-policy.c: the "partitions:" key, into a struct policy. */
int config_parse_partitions(struct config_ctx *x, const struct config_key *k,
			    const struct config_value *v, void *field);
