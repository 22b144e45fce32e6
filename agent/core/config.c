// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

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
		.log_level = -1,
	};
}

void config_done(struct config *c)
{
	free(c->socket_path);
	free(c->socket_group);
	free(c->admin_group);
	free(c->nvml_library);
	free(c->cuda_library);
	free(c->xid_actions);
	policy_done(&c->policy);
	config_init(c);
}

int parse_duration(const char *s, uint64_t *ret_usec)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = { { "ms", 1000ULL }, { "s", 1000000ULL }, { "m", 60000000ULL },
		      { "h", 3600000000ULL }, { "", 1000000ULL } };
	char num[32];
	uint64_t v;
	size_t n;

	if (isempty(s))
		return -EINVAL;
	n = strspn(s, "0123456789");
	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	if (safe_atou64(num, &v) < 0)
		return -ERANGE;
	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (streq(s + n, units[i].suffix)) {
			if (v > UINT64_MAX / units[i].mult)
				return -ERANGE;
			*ret_usec = v * units[i].mult;
			return 0;
		}
	return -EINVAL;
}

static int fail(char **ret_error, size_t line, const char *fmt, ...) _printf_(3, 4);
static int fail(char **ret_error, size_t line, const char *fmt, ...)
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

static int set_string(char **field, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
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
	if (streq(key, "socket-group"))
		return set_string(&c->socket_group, value);
	if (streq(key, "admin-group"))
		return set_string(&c->admin_group, value);
	if (streq(key, "nvml-library"))
		return set_string(&c->nvml_library, value);
	if (streq(key, "cuda-library"))
		return set_string(&c->cuda_library, value);
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
	return fail(ret_error, line,
		    "unknown key '%s' (known: socket, socket-group, socket-mode, admin-group, "
		    "health-interval, log-level, nvml-library, cuda-library, nvidia-xid-actions)",
		    key);
}

int config_parse(const char *text, size_t len, struct config *c, char **ret_error)
{
	yaml_parser_t parser;
	_cleanup_free_ char *key = NULL;
	_cleanup_strv_free_ char **seen = NULL;
	size_t key_line = 0;
	int depth = 0, documents = 0, r = 0;
	bool done = false;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

	while (!done && r >= 0) {
		yaml_event_t ev;
		size_t line;

		if (!yaml_parser_parse(&parser, &ev)) {
			r = fail(ret_error, parser.problem_mark.line + 1, "%s",
				 parser.problem ?: "malformed YAML");
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
			if (++depth > 1)
				r = fail(ret_error, line, "'%s': expected a single value, not a mapping",
					 key ?: "?");
			break;
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_SEQUENCE_START_EVENT:
			r = fail(ret_error, line, "'%s': expected a single value, not a list",
				 key ?: "top level");
			break;
		case YAML_SCALAR_EVENT: {
			const char *v = (const char *)ev.data.scalar.value;

			if (depth != 1) {
				/* An empty document is fine; a bare scalar is not a config. */
				r = fail(ret_error, line, "expected a mapping of keys to values");
			} else if (!key) {
				if (strv_contains(seen, v)) {
					r = fail(ret_error, line, "'%s' is given twice", v);
					break;
				}
				key = strdup(v);
				key_line = line;
				if (!key || strv_extend(&seen, v) < 0)
					r = -ENOMEM;
			} else {
				r = apply_key(c, key, v, key_line, ret_error);
				key = mfree(key);
			}
			break;
		}
		case YAML_ALIAS_EVENT:
			r = fail(ret_error, line, "aliases are not supported");
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
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
