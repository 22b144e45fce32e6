/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xpuctl: the command-line client of xpud, built on libxpu. It turns the daemon's JSON
 * documents into aligned tables and key/value views, or prints them as they came (-o json).
 *
 * Exit status (also in --help and docs/xpuctl.md; scripts depend on it, keep it stable):
 *   0  success
 *   1  usage error, or a local failure (out of memory, output not writable)
 *   2  xpud answered with an error; its message is printed
 *   3  xpud cannot be reached: not running, wrong socket, connection lost or timed out
 *   4  xpud's answer was malformed
 */
#include <errno.h>
#include <stdint.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "shared/macro.h"
#include "shared/parse.h"
#include "xpu/client.h"

enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_USAGE = 1,
	CTL_EXIT_DAEMON_ERROR = 2,
	CTL_EXIT_UNREACHABLE = 3,
	CTL_EXIT_MALFORMED = 4,
};

#define KEY_WIDTH 16 /* detail views: "Client version: " */

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
	unsigned n_alloc_options; /* how many of the alloc options were given */
	unsigned n_fit_options;
	unsigned n_cordon_options;
	unsigned n_repartition_options;
	struct xpu_client *client; /* connected on first use */
};

#define _cleanup_json_ _cleanup_(json_decrefp)

static const char *ctl_socket(const struct ctl *ctl)
{
	return xpu_client_socket_path(ctl->socket_arg);
}

/* ---- output helpers --------------------------------------------------------------------- */

/* Daemon strings come from sysfs and vendor libraries: never let them drive the terminal. */
static char *sanitize(const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return copy;
}

static void put_sanitized(const char *s, FILE *f)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

static int oom(void)
{
	fprintf(stderr, "xpuctl: out of memory\n");
	return CTL_EXIT_USAGE;
}

static int malformed(const struct ctl *ctl, const char *what)
{
	fprintf(stderr, "xpuctl: malformed answer from xpud at %s: %s\n", ctl_socket(ctl), what);
	return CTL_EXIT_MALFORMED;
}

static int print_json(const json_t *doc)
{
	_cleanup_free_ char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (!s)
		return oom();
	puts(s);
	return CTL_EXIT_OK;
}

/* "Key:            value", the value sanitized; NULL or empty prints "-". */
static void print_field(const char *key, const char *value)
{
	int pad = KEY_WIDTH - (int)strlen(key) - 1;

	printf("%s:%*s", key, MAX(pad, 1), "");
	put_sanitized(isempty(value) ? "-" : value, stdout);
	putchar('\n');
}

/* Continuation line of a multi-value field. */
static void print_continuation(const char *value)
{
	printf("%*s", KEY_WIDTH, "");
	put_sanitized(value, stdout);
	putchar('\n');
}

/* Item @i of a multi-value field: the key on the first line only. */
static void print_list_item(const char *key, size_t i, const char *value)
{
	if (i == 0)
		print_field(key, value);
	else
		print_continuation(value ?: "?");
}

/* ---- aligned tables --------------------------------------------------------------------- */

struct table {
	size_t n_columns;
	char **cells; /* row-major, the first row is the header */
	size_t n_cells;
	size_t allocated;
};

static void table_done(struct table *t)
{
	for (size_t i = 0; i < t->n_cells; i++)
		free(t->cells[i]);
	free(t->cells);
	*t = (struct table){};
}

/* Adds the next cell (rows fill left to right). NULL and "" show as "-". */
static int table_add(struct table *t, const char *s)
{
	char *copy;

	if (t->n_cells == t->allocated) {
		size_t n = MAX(t->allocated * 2, (size_t)32);
		char **p = reallocarray(t->cells, n, sizeof(char *));

		if (!p)
			return -ENOMEM;
		t->cells = p;
		t->allocated = n;
	}
	copy = sanitize(isempty(s) ? "-" : s);
	if (!copy)
		return -ENOMEM;
	t->cells[t->n_cells++] = copy;
	return 0;
}

static int table_init(struct table *t, const char *const *header, size_t n)
{
	*t = (struct table){ .n_columns = n };
	for (size_t i = 0; i < n; i++) {
		int r = table_add(t, header[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

/* Display width in columns, counting UTF-8 sequences rather than bytes. */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void table_print(const struct table *t, bool legend)
{
	size_t first = legend ? 0 : t->n_columns;
	size_t widths[16] = {};

	if (t->n_columns == 0 || t->n_columns > ELEMENTSOF(widths))
		return;
	for (size_t i = first; i < t->n_cells; i++)
		widths[i % t->n_columns] = MAX(widths[i % t->n_columns], text_width(t->cells[i]));

	for (size_t i = first; i < t->n_cells; i++) {
		size_t col = i % t->n_columns;

		fputs(t->cells[i], stdout);
		if (col + 1 == t->n_columns || i + 1 == t->n_cells)
			putchar('\n');
		else
			printf("%*s", (int)(widths[col] - text_width(t->cells[i]) + 2), "");
	}
}

/* ---- JSON field formatting -------------------------------------------------------------- */

static const char *j_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *fmt_int(const json_t *v, char buf[static 32])
{
	if (!json_is_integer(v))
		return NULL;
	snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

static const char *fmt_bytes(const json_t *v, char buf[static 32])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	json_int_t n;
	size_t i = 0;
	double d;

	if (!json_is_integer(v) || (n = json_integer_value(v)) < 0)
		return NULL;
	if (n < 1024) {
		snprintf(buf, 32, "%" JSON_INTEGER_FORMAT " B", n);
		return buf;
	}
	for (d = (double)n / 1024; d >= 1024 && i + 1 < ELEMENTSOF(units); i++)
		d /= 1024;
	snprintf(buf, 32, "%.1f %s", d, units[i]);
	return buf;
}

/* 1 -> "1", 0.5 -> "0.5", 1/7 -> "0.14". */
static const char *fmt_fraction(const json_t *v, char buf[static 32])
{
	char *e;

	if (!json_is_number(v))
		return NULL;
	snprintf(buf, 32, "%.2f", json_number_value(v));
	e = buf + strlen(buf);
	while (e > buf && e[-1] == '0')
		*--e = '\0';
	if (e > buf && e[-1] == '.')
		*--e = '\0';
	return buf;
}

/* A time in microseconds since the epoch as UTC ("2026-11-26T16:10:01Z"), or NULL. */
static const char *fmt_time_usec(const json_t *v, char buf[static 32])
{
	time_t sec;
	struct tm tm;

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return NULL;
	sec = (time_t)(json_integer_value(v) / 1000000);
	if (!gmtime_r(&sec, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return NULL;
	return buf;
}

static const char *fmt_bool(const json_t *v)
{
	return json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no") : NULL;
}

/* Devices carry {"state":..,"reason":..}; slices carry the state string alone. */
static const char *health_state(const json_t *v)
{
	return json_is_object(v) ? j_str(v, "state") : json_string_value(v);
}

/* "32.0 GT/s x16", "32.0 GT/s", "x16", or NULL when neither is known. */
static const char *fmt_link(const json_t *speed, const json_t *width, char buf[static 64])
{
	const char *s = json_string_value(speed);

	if (s && json_is_integer(width))
		snprintf(buf, 64, "%.40s x%" JSON_INTEGER_FORMAT, s, json_integer_value(width));
	else if (s)
		snprintf(buf, 64, "%.40s", s);
	else if (json_is_integer(width))
		snprintf(buf, 64, "x%" JSON_INTEGER_FORMAT, json_integer_value(width));
	else
		return NULL;
	return buf;
}

/* PCI ids come as "0x10de"; show them as lspci does. */
static const char *strip_hex_prefix(const char *s)
{
	if (s && (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0))
		return s + 2;
	return s;
}

/* ---- talking to the daemon -------------------------------------------------------------- */

static int ctl_connect(struct ctl *ctl)
{
	int r;

	if (ctl->client)
		return CTL_EXIT_OK;

	r = xpu_client_new(ctl->socket_arg, &ctl->client);
	if (r == -ENOMEM)
		return oom();
	if (r < 0) {
		fprintf(stderr, "xpuctl: cannot connect to xpud at %s: %s ", ctl_socket(ctl),
			strerror(-r));
		fprintf(stderr, "(is xpud running? use --socket or XPUD_SOCKET)\n");
		return CTL_EXIT_UNREACHABLE;
	}
	return CTL_EXIT_OK;
}

static int transport_error(const struct ctl *ctl, int r)
{
	switch (r) {
	case -ENOMEM:
		return oom();
	case -EBADMSG:
		return malformed(ctl, "not an HTTP answer with a JSON body");
	case -EMSGSIZE:
		return malformed(ctl, "answer exceeds the size limit");
	default:
		fprintf(stderr, "xpuctl: lost connection to xpud at %s: %s\n", ctl_socket(ctl),
			strerror(-r));
		return CTL_EXIT_UNREACHABLE;
	}
}

static int daemon_error(int status, const json_t *doc)
{
	const char *message = j_str(doc, "message"), *code = j_str(doc, "error");

	fputs("xpuctl: ", stderr);
	if (message)
		put_sanitized(message, stderr);
	else if (code) {
		fprintf(stderr, "xpud answered %d: ", status);
		put_sanitized(code, stderr);
	} else
		fprintf(stderr, "xpud answered HTTP status %d", status);
	fputc('\n', stderr);
	return CTL_EXIT_DAEMON_ERROR;
}

/* One request; returns an exit code. *ret_status and *ret_doc are written on CTL_EXIT_OK. */
static int ctl_request_body(struct ctl *ctl, const char *method, const char *path,
			    const json_t *body, int *ret_status, json_t **ret_doc)
{
	int r;

	r = ctl_connect(ctl);
	if (r != CTL_EXIT_OK)
		return r;
	r = xpu_client_request(ctl->client, method, path, body, ret_status, ret_doc);
	if (r < 0)
		return transport_error(ctl, r);
	return CTL_EXIT_OK;
}

/* A request whose successful answer must be a JSON object. */
static int ctl_request(struct ctl *ctl, const char *method, const char *path, int *ret_status,
		       json_t **ret_doc)
{
	return ctl_request_body(ctl, method, path, NULL, ret_status, ret_doc);
}

static int ctl_call_body(struct ctl *ctl, const char *method, const char *path,
			 const json_t *body, json_t **ret)
{
	_cleanup_json_ json_t *doc = NULL;
	int status, r;

	r = ctl_request_body(ctl, method, path, body, &status, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (status < 200 || status > 299)
		return daemon_error(status, doc);
	if (!json_is_object(doc))
		return malformed(ctl, "expected a JSON object");

	*ret = TAKE_PTR(doc);
	return CTL_EXIT_OK;
}

static int ctl_call(struct ctl *ctl, const char *method, const char *path, json_t **ret)
{
	return ctl_call_body(ctl, method, path, NULL, ret);
}

/* The array @key of @doc, or NULL after reporting a malformed answer. */
static const json_t *doc_array(const struct ctl *ctl, const json_t *doc, const char *key)
{
	const json_t *a = json_object_get(doc, key);
	size_t i;
	json_t *e;

	if (!json_is_array(a)) {
		fprintf(stderr, "xpuctl: malformed answer from xpud at %s: no \"%s\" array\n",
			ctl_socket(ctl), key);
		return NULL;
	}
	json_array_foreach(a, i, e) {
		if (!json_is_object(e)) {
			fprintf(stderr, "xpuctl: malformed answer from xpud at %s: ",
				ctl_socket(ctl));
			fprintf(stderr, "\"%s\" holds a non-object\n", key);
			return NULL;
		}
	}
	return a;
}

/* GET @path, whose answer holds the array @key: both returned, or an exit code. */
static int fetch_list(struct ctl *ctl, const char *path, const char *key, json_t **ret_doc,
		      const json_t **ret_list)
{
	int r = ctl_call(ctl, "GET", path, ret_doc);

	if (r != CTL_EXIT_OK)
		return r;
	*ret_list = doc_array(ctl, *ret_doc, key);
	return *ret_list ? CTL_EXIT_OK : CTL_EXIT_MALFORMED;
}

/* Percent-encodes one path segment; keeps RFC 3986 unreserved characters and ':'. */
static char *path_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~:", c)) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* ---- commands --------------------------------------------------------------------------- */

static int verb_devices(struct ctl *ctl, char **args)
{
	static const char *const header[] = { "ID",	"KIND",	  "VENDOR", "MODEL", "NUMA",
					      "MEMORY", "DRIVER", "HEALTH", "PHASE" };
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_(table_done) struct table t = {};
	const json_t *devices;
	json_t *d;
	size_t i;
	int r;

	r = fetch_list(ctl, "/v1/devices", "devices", &doc, &devices);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);

	if (table_init(&t, header, ELEMENTSOF(header)) < 0)
		return oom();
	json_array_foreach(devices, i, d) {
		char numa[32], mem[32];

		if (table_add(&t, j_str(d, "id")) < 0 || table_add(&t, j_str(d, "kind")) < 0 ||
		    table_add(&t, j_str(d, "vendor")) < 0 || table_add(&t, j_str(d, "model")) < 0 ||
		    table_add(&t, fmt_int(json_object_get(d, "numa_node"), numa)) < 0 ||
		    table_add(&t, fmt_bytes(json_object_get(d, "memory_bytes"), mem)) < 0 ||
		    table_add(&t, j_str(d, "driver")) < 0 ||
		    table_add(&t, health_state(json_object_get(d, "health"))) < 0 ||
		    table_add(&t, j_str(json_object_get(d, "health"), "phase")) < 0)
			return oom();
	}
	table_print(&t, ctl->legend);
	return CTL_EXIT_OK;
}

/* "18:00.0": a PCI address without its domain, as lspci prints by default. */
static bool is_short_pci_address(const char *s)
{
	const char *colon = strchr(s, ':');

	return colon && !strchr(colon + 1, ':') && strchr(colon + 1, '.');
}

static bool suffix_matches(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && s[n - k - 1] == ':' && strcasecmp(s + n - k, suffix) == 0;
}

static bool device_matches(const json_t *d, const char *arg)
{
	const char *id = j_str(d, "id"), *uuid = j_str(d, "uuid");
	const char *addr = j_str(json_object_get(d, "pci"), "address");

	if ((id && strcasecmp(id, arg) == 0) || (addr && strcasecmp(addr, arg) == 0) ||
	    (uuid && streq(uuid, arg)))
		return true;
	if (!is_short_pci_address(arg))
		return false;
	return (id && suffix_matches(id, arg)) || (addr && suffix_matches(addr, arg));
}

/*
 * GET /v1/devices/{id}; on 404, looks @arg up in the device list as a short PCI address (or a
 * differently-cased address, or a UUID) before giving up with the daemon's 404 message.
 */
static int device_lookup(struct ctl *ctl, const char *arg, json_t **ret)
{
	_cleanup_json_ json_t *doc = NULL, *list = NULL;
	_cleanup_free_ char *escaped = NULL, *path = NULL;
	const json_t *devices, *match = NULL;
	size_t i, n_matches = 0;
	int status, r;
	json_t *d;

	escaped = path_escape(arg);
	if (!escaped || asprintf(&path, "/v1/devices/%s", escaped) < 0)
		return oom();

	r = ctl_request(ctl, "GET", path, &status, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (status >= 200 && status <= 299) {
		if (!json_is_object(doc))
			return malformed(ctl, "expected a JSON object");
		*ret = TAKE_PTR(doc);
		return CTL_EXIT_OK;
	}
	if (status != 404)
		return daemon_error(status, doc);

	r = ctl_call(ctl, "GET", "/v1/devices", &list);
	if (r != CTL_EXIT_OK)
		return r;
	devices = doc_array(ctl, list, "devices");
	if (!devices)
		return CTL_EXIT_MALFORMED;
	json_array_foreach(devices, i, d) {
		if (device_matches(d, arg)) {
			match = d;
			n_matches++;
		}
	}

	if (n_matches == 0)
		return daemon_error(status, doc);
	if (n_matches > 1) {
		fprintf(stderr, "xpuctl: '");
		put_sanitized(arg, stderr);
		fprintf(stderr, "' matches %zu devices; give the full address:", n_matches);
		json_array_foreach(devices, i, d) {
			if (device_matches(d, arg)) {
				fputc(' ', stderr);
				put_sanitized(j_str(d, "id") ?: "?", stderr);
			}
		}
		fputc('\n', stderr);
		return CTL_EXIT_USAGE;
	}

	*ret = json_incref((json_t *)match);
	return CTL_EXIT_OK;
}

/* "probation since T, until T (probe-ok: reason)"; nothing from a daemon without phases. */
static void print_phase(const json_t *health)
{
	const char *phase = j_str(health, "phase"), *signal = j_str(health, "signal");
	const char *why = j_str(health, "phase_reason");
	char since[32], until[32], buf[512];
	int n;

	if (!phase)
		return;
	n = snprintf(buf, sizeof(buf), "%.20s", phase);
	if (fmt_time_usec(json_object_get(health, "since_usec"), since))
		n += snprintf(buf + n, sizeof(buf) - n, " since %s", since);
	if (fmt_time_usec(json_object_get(health, "until_usec"), until))
		n += snprintf(buf + n, sizeof(buf) - n, ", until %s", until);
	if (signal && why)
		snprintf(buf + n, sizeof(buf) - n, " (%.20s: %.300s)", signal, why);
	else if (signal)
		snprintf(buf + n, sizeof(buf) - n, " (%.20s)", signal);
	print_field("Phase", buf);
}

static void print_device(const json_t *d)
{
	const json_t *pci = json_object_get(d, "pci"), *link = json_object_get(pci, "link");
	const json_t *health = json_object_get(d, "health"), *nodes, *props, *v;
	char buf[160], num[32], mem[32], cur[64], max[64];
	const char *vendor_id, *device_id, *key, *state, *reason;
	size_t i;

	print_field("ID", j_str(d, "id"));
	print_field("Kind", j_str(d, "kind"));
	print_field("Vendor", j_str(d, "vendor"));
	print_field("Model", j_str(d, "model"));
	print_field("UUID", j_str(d, "uuid"));
	print_field("Backend", j_str(d, "backend"));
	print_field("Resource", j_str(d, "resource"));
	print_field("Driver", j_str(d, "driver"));

	state = health_state(health);
	reason = j_str(health, "reason");
	if (state && reason) {
		_cleanup_free_ char *s = NULL;

		if (asprintf(&s, "%s (%s)", state, reason) < 0)
			s = NULL;
		print_field("Health", s ?: state);
	} else
		print_field("Health", state);
	print_phase(health);

	print_field("NUMA node", fmt_int(json_object_get(d, "numa_node"), num));
	print_field("CPUs", j_str(d, "cpu_list"));
	v = json_object_get(d, "memory_bytes");
	if (fmt_bytes(v, mem) && fmt_int(v, num)) {
		snprintf(buf, sizeof(buf), "%s (%s bytes)", mem, num);
		print_field("Memory", buf);
	} else
		print_field("Memory", NULL);

	print_field("PCI address", j_str(pci, "address"));
	vendor_id = strip_hex_prefix(j_str(pci, "vendor_id"));
	device_id = strip_hex_prefix(j_str(pci, "device_id"));
	if (vendor_id && device_id) {
		const char *sv = strip_hex_prefix(j_str(pci, "subsystem_vendor_id"));
		const char *sd = strip_hex_prefix(j_str(pci, "subsystem_device_id"));

		if (sv && sd)
			snprintf(buf, sizeof(buf), "%.8s:%.8s (subsystem %.8s:%.8s)", vendor_id,
				 device_id, sv, sd);
		else
			snprintf(buf, sizeof(buf), "%.8s:%.8s", vendor_id, device_id);
		print_field("PCI ID", buf);
	} else
		print_field("PCI ID", NULL);
	if (j_str(pci, "class") && j_str(pci, "revision")) {
		snprintf(buf, sizeof(buf), "%.8s, revision %.8s",
			 strip_hex_prefix(j_str(pci, "class")),
			 strip_hex_prefix(j_str(pci, "revision")));
		print_field("PCI class", buf);
	} else
		print_field("PCI class", strip_hex_prefix(j_str(pci, "class")));

	if (fmt_link(json_object_get(link, "speed"), json_object_get(link, "width"), cur) &&
	    fmt_link(json_object_get(link, "max_speed"), json_object_get(link, "max_width"), max)) {
		snprintf(buf, sizeof(buf), "%s (max %s)", cur, max);
		print_field("Link", buf);
	} else
		print_field("Link", fmt_link(json_object_get(link, "speed"),
					     json_object_get(link, "width"), cur));

	nodes = json_object_get(d, "device_nodes");
	if (json_array_size(nodes) == 0)
		print_field("Device nodes", NULL);
	json_array_foreach(nodes, i, v) {
		if (i == 0)
			print_field("Device nodes", json_string_value(v) ?: "?");
		else
			print_continuation(json_string_value(v) ?: "?");
	}

	props = json_object_get(d, "properties");
	if (json_object_size(props) == 0)
		print_field("Properties", NULL);
	i = 0;
	json_object_foreach((json_t *)props, key, v) {
		_cleanup_free_ char *s = NULL, *dumped = NULL;
		const char *value = json_string_value(v);

		/* Properties are strings by contract; show anything else as compact JSON. */
		if (!value)
			dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		if (asprintf(&s, "%s=%s", key, value ?: dumped ?: "?") < 0)
			s = NULL;
		if (i++ == 0)
			print_field("Properties", s ?: key);
		else
			print_continuation(s ?: key);
	}
}

static int verb_device(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *d = NULL;
	int r;

	if (isempty(args[0])) {
		fprintf(stderr, "xpuctl: the device ID must not be empty\n");
		return CTL_EXIT_USAGE;
	}
	r = device_lookup(ctl, args[0], &d);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(d);
	print_device(d);
	return CTL_EXIT_OK;
}

static int verb_slices(struct ctl *ctl, char **args)
{
	static const char *const header[] = { "ID",	  "RESOURCE", "DEVICE", "MEMORY",
					      "FRACTION", "SHARED",   "HEALTH" };
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_(table_done) struct table t = {};
	const json_t *slices;
	json_t *s;
	size_t i;
	int r;

	r = fetch_list(ctl, "/v1/slices", "slices", &doc, &slices);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);

	if (table_init(&t, header, ELEMENTSOF(header)) < 0)
		return oom();
	json_array_foreach(slices, i, s) {
		char mem[32], frac[32];

		if (table_add(&t, j_str(s, "id")) < 0 || table_add(&t, j_str(s, "resource")) < 0 ||
		    table_add(&t, j_str(s, "device_id")) < 0 ||
		    table_add(&t, fmt_bytes(json_object_get(s, "memory_bytes"), mem)) < 0 ||
		    table_add(&t, fmt_fraction(json_object_get(s, "compute_fraction"), frac)) < 0 ||
		    table_add(&t, fmt_bool(json_object_get(s, "shared"))) < 0 ||
		    table_add(&t, health_state(json_object_get(s, "health"))) < 0)
			return oom();
	}
	table_print(&t, ctl->legend);
	return CTL_EXIT_OK;
}

static int verb_capacity(struct ctl *ctl, char **args)
{
	static const char *const header[] = { "RESOURCE", "TOTAL", "HEALTHY", "ALLOCATED",
					      "FREE" };
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_(table_done) struct table t = {};
	const json_t *resources;
	json_t *e;
	size_t i;
	int r;

	r = fetch_list(ctl, "/v1/capacity", "resources", &doc, &resources);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);

	if (table_init(&t, header, ELEMENTSOF(header)) < 0)
		return oom();
	json_array_foreach(resources, i, e) {
		char a[32], b[32], c[32], d[32];

		if (table_add(&t, j_str(e, "name")) < 0 ||
		    table_add(&t, fmt_int(json_object_get(e, "total"), a)) < 0 ||
		    table_add(&t, fmt_int(json_object_get(e, "healthy"), b)) < 0 ||
		    table_add(&t, fmt_int(json_object_get(e, "allocated"), c)) < 0 ||
		    table_add(&t, fmt_int(json_object_get(e, "free"), d)) < 0)
			return oom();
	}
	table_print(&t, ctl->legend);
	return CTL_EXIT_OK;
}

static int verb_health(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *doc = NULL;
	const json_t *devices, *unhealthy;
	char a[32], b[32], c[32], buf[128];
	json_t *e;
	size_t i;
	int r;

	r = ctl_call(ctl, "GET", "/v1/health", &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (!j_str(doc, "status"))
		return malformed(ctl, "no \"status\" in the health document");
	if (ctl->json)
		return print_json(doc);

	print_field("Status", j_str(doc, "status"));
	devices = json_object_get(doc, "devices");
	snprintf(buf, sizeof(buf), "%s total, %s healthy, %s unhealthy",
		 fmt_int(json_object_get(devices, "total"), a) ?: "-",
		 fmt_int(json_object_get(devices, "healthy"), b) ?: "-",
		 fmt_int(json_object_get(devices, "unhealthy"), c) ?: "-");
	print_field("Devices", buf);

	unhealthy = json_object_get(doc, "unhealthy");
	json_array_foreach(unhealthy, i, e) {
		_cleanup_free_ char *s = NULL;

		if (asprintf(&s, "%s: %s", j_str(e, "id") ?: "?", j_str(e, "reason") ?: "-") < 0)
			return oom();
		if (i == 0)
			print_field("Unhealthy", s);
		else
			print_continuation(s);
	}
	return CTL_EXIT_OK;
}

static int verb_version(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *doc = NULL;
	const json_t *backends;
	json_t *b;
	size_t i;
	int r;

	/* The client's own version is worth showing even when the daemon is down. */
	if (!ctl->json) {
		print_field("Client version", XPU_VERSION);
		fflush(stdout);
	}

	r = ctl_call(ctl, "GET", "/v1/version", &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (!j_str(doc, "version"))
		return malformed(ctl, "no \"version\" in the version document");
	if (ctl->json)
		return print_json(doc);

	if (j_str(doc, "api")) {
		char buf[128];

		snprintf(buf, sizeof(buf), "%.60s (API %.60s)", j_str(doc, "version"),
			 j_str(doc, "api"));
		print_field("Daemon version", buf);
	} else
		print_field("Daemon version", j_str(doc, "version"));
	print_field("Host root", j_str(doc, "root"));

	backends = json_object_get(doc, "backends");
	if (json_array_size(backends) == 0)
		print_field("Backends", NULL);
	json_array_foreach(backends, i, b) {
		_cleanup_free_ char *s = NULL;
		const char *reason = j_str(b, "reason");
		int k;

		if (json_is_true(json_object_get(b, "available")))
			k = asprintf(&s, "%s (available)", j_str(b, "name") ?: "?");
		else
			k = asprintf(&s, "%s (unavailable%s%s)", j_str(b, "name") ?: "?",
				     reason ? ": " : "", reason ?: "");
		if (k < 0)
			return oom();
		if (i == 0)
			print_field("Backends", s);
		else
			print_continuation(s);
	}
	return CTL_EXIT_OK;
}

static int verb_rescan(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *doc = NULL;
	char a[32], b[32], c[32], d[32];
	int r;

	r = ctl_call(ctl, "POST", "/v1/rescan", &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);

	printf("Rescanned: %s devices (%s added, %s removed, %s changed)\n",
	       fmt_int(json_object_get(doc, "devices"), a) ?: "-",
	       fmt_int(json_object_get(doc, "added"), b) ?: "-",
	       fmt_int(json_object_get(doc, "removed"), c) ?: "-",
	       fmt_int(json_object_get(doc, "changed"), d) ?: "-");
	return CTL_EXIT_OK;
}

/* ---- allocations ------------------------------------------------------------------------- */

static void print_grant(const json_t *a)
{
	const json_t *env = json_object_get(a, "env"), *v;
	const char *key;
	char num[32];
	size_t i;

	print_field("Allocation", j_str(a, "id"));
	print_field("Resource", j_str(a, "resource"));
	json_array_foreach(json_object_get(a, "slices"), i, v) {
		char line[512];

		snprintf(line, sizeof(line), "%s (device %s)", j_str(v, "id") ?: "?",
			 j_str(v, "device_id") ?: "gone");
		print_list_item("Slices", i, line);
	}
	json_array_foreach(json_object_get(a, "device_nodes"), i, v)
		print_list_item("Device nodes", i, json_string_value(v));
	i = 0;
	json_object_foreach((json_t *)env, key, v) {
		char line[1024];

		snprintf(line, sizeof(line), "%s=%s", key, json_string_value(v) ?: "");
		print_list_item("Environment", i++, line);
	}
	json_array_foreach(json_object_get(a, "cdi_devices"), i, v)
		print_list_item("CDI devices", i, json_string_value(v));
	print_field("NUMA node", fmt_int(json_object_get(a, "numa_node"), num));
	print_field("CPUs", j_str(a, "cpu_list"));
	v = json_object_get(a, "owner");
	if (j_str(v, "value")) {
		char line[512];

		snprintf(line, sizeof(line), "%s %s", j_str(v, "kind"), j_str(v, "value"));
		print_field("Owner", line);
	}
}

/* "nvidia.com/gpu=2" or "nvidia.com/gpu" (one). */
static int parse_resource_count(const char *arg, char **ret_resource, unsigned *ret_count)
{
	const char *eq = strrchr(arg, '=');
	unsigned long n = 1;
	char *end;

	if (eq) {
		errno = 0;
		n = strtoul(eq + 1, &end, 10);
		if (eq == arg || !eq[1] || *end || errno || n == 0 || n > 100000)
			return -EINVAL;
	}
	*ret_resource = eq ? strndup(arg, eq - arg) : strdup(arg);
	*ret_count = (unsigned)n;
	return *ret_resource ? 0 : -ENOMEM;
}

static int verb_alloc(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *body = NULL, *doc = NULL;
	_cleanup_free_ char *resource = NULL;
	unsigned count;
	int r;

	r = parse_resource_count(args[0], &resource, &count);
	if (r == -ENOMEM)
		return oom();
	if (r < 0 || isempty(resource)) {
		fprintf(stderr, "xpuctl: expected RESOURCE=COUNT, e.g. nvidia.com/gpu=2, got '%s'\n",
			args[0]);
		return CTL_EXIT_USAGE;
	}
	body = json_pack("{s:s, s:I, s:b, s:b}", "resource", resource, "count", (json_int_t)count,
			 "numa_local", ctl->numa_local, "connected", ctl->connected);
	if (!body || (ctl->device && json_object_set_new(body, "device",
							 json_string(ctl->device)) < 0))
		return oom();
	if (ctl->owner_kind) {
		json_t *owner;

		if (streq(ctl->owner_kind, "pid")) {
			char *end;
			long pid = strtol(ctl->owner_value, &end, 10);

			if (*end || pid <= 0 || pid > INT32_MAX) {
				fprintf(stderr, "xpuctl: --owner-pid expects a process id, got '%s'\n",
					ctl->owner_value);
				return CTL_EXIT_USAGE;
			}
			owner = json_pack("{s:I}", "pid", (json_int_t)pid);
		} else {
			owner = json_pack("{s:s}", ctl->owner_kind, ctl->owner_value);
		}
		if (!owner || json_object_set_new(body, "owner", owner) < 0)
			return oom();
	}
	r = ctl_call_body(ctl, "POST", "/v1/allocations", body, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	print_grant(doc);
	return CTL_EXIT_OK;
}

static int verb_release(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *path = NULL, *seg = NULL;
	int r;

	seg = path_escape(args[0]);
	if (!seg || asprintf(&path, "/v1/allocations/%s", seg) < 0)
		return oom();
	r = ctl_call(ctl, "DELETE", path, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	printf("Released %s\n", args[0]);
	return CTL_EXIT_OK;
}

static int verb_allocations(struct ctl *ctl, char **args)
{
	static const char *const header[] = { "ID", "RESOURCE", "SLICES", "OWNER" };
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_(table_done) struct table t = {};
	const json_t *list;
	json_t *a;
	size_t i;
	int r;

	r = fetch_list(ctl, "/v1/allocations", "allocations", &doc, &list);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	if (table_init(&t, header, ELEMENTSOF(header)) < 0)
		return oom();
	json_array_foreach(list, i, a) {
		const json_t *owner = json_object_get(a, "owner"), *sl;
		char slices[1024] = "", who[512];
		size_t j;

		json_array_foreach(json_object_get(a, "slices"), j, sl) {
			size_t n = strlen(slices);

			snprintf(slices + n, sizeof(slices) - n, "%s%s", j ? "," : "",
				 j_str(sl, "id") ?: "?");
		}
		snprintf(who, sizeof(who), "%s%s%s%s", j_str(owner, "kind") ?: "-",
			 j_str(owner, "value") ? " " : "", j_str(owner, "value") ?: "",
			 json_is_true(json_object_get(a, "release_pending"))
				 ? " (gone, release pending)"
				 : "");
		if (table_add(&t, j_str(a, "id")) < 0 || table_add(&t, j_str(a, "resource")) < 0 ||
		    table_add(&t, slices) < 0 || table_add(&t, who) < 0)
			return oom();
	}
	table_print(&t, ctl->legend);
	return CTL_EXIT_OK;
}

static int verb_fit(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *body = json_object(), *doc = NULL;
	const json_t *v;
	uint64_t bytes;
	size_t i;
	int r;

	if (!body)
		return oom();
	if (ctl->memory) {
		if (parse_size(ctl->memory, &bytes) < 0) {
			fprintf(stderr, "xpuctl: --memory expects a size such as 10GiB, got '%s'\n",
				ctl->memory);
			return CTL_EXIT_USAGE;
		}
		if (json_object_set_new(body, "memory_bytes", json_integer((json_int_t)bytes)) < 0)
			return oom();
	}
	if (ctl->compute) {
		char *end;
		double c = strtod(ctl->compute, &end);

		if (*end || !(c > 0 && c <= 1)) {
			fprintf(stderr, "xpuctl: --compute expects a fraction in (0, 1], got '%s'\n",
				ctl->compute);
			return CTL_EXIT_USAGE;
		}
		if (json_object_set_new(body, "compute", json_real(c)) < 0)
			return oom();
	}
	if (ctl->count) {
		char *end;
		unsigned long n = strtoul(ctl->count, &end, 10);

		if (*end || n == 0 || n > 100000) {
			fprintf(stderr, "xpuctl: --count expects a positive number, got '%s'\n",
				ctl->count);
			return CTL_EXIT_USAGE;
		}
		if (json_object_set_new(body, "count", json_integer((json_int_t)n)) < 0)
			return oom();
	}
	if ((ctl->kind && json_object_set_new(body, "kind", json_string(ctl->kind)) < 0) ||
	    (ctl->resource && json_object_set_new(body, "resource", json_string(ctl->resource)) < 0))
		return oom();
	r = ctl_call_body(ctl, "POST", "/v1/fit", body, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	printf("%s workload%s of this shape fit%s%s\n",
	       fmt_int(json_object_get(doc, "fits"), (char[32]){}) ?: "?",
	       json_integer_value(json_object_get(doc, "fits")) == 1 ? "" : "s",
	       j_str(doc, "resource") ? " on " : "", j_str(doc, "resource") ?: "");
	json_array_foreach(json_object_get(doc, "slices"), i, v)
		print_list_item("First would get", i, json_string_value(v));
	return CTL_EXIT_OK;
}

/* What a plan entry says of the device's cordon or repartition, for the STATE column. */
static const char *plan_state(const json_t *d, char buf[static 64])
{
	const json_t *rp = json_object_get(d, "repartition");

	if (json_is_object(rp)) {
		snprintf(buf, 64, "repartitioning (%s)", j_str(rp, "phase") ?: "?");
		return buf;
	}
	return json_is_object(json_object_get(d, "cordon")) ? "cordoned" : "-";
}

static int verb_plan(struct ctl *ctl, char **args)
{
	static const char *const header[] = { "DEVICE", "OFFER", "PENDING", "STATE", "REASON" };
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_(table_done) struct table t = {};
	const json_t *list;
	json_t *d;
	size_t i;
	int r;

	r = fetch_list(ctl, "/v1/plan", "devices", &doc, &list);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	if (table_init(&t, header, ELEMENTSOF(header)) < 0)
		return oom();
	json_array_foreach(list, i, d) {
		const json_t *c = json_object_get(d, "cordon");
		char buf[64];

		if (table_add(&t, j_str(d, "device")) < 0 || table_add(&t, j_str(d, "applied")) < 0 ||
		    table_add(&t, j_str(d, "pending")) < 0 ||
		    table_add(&t, plan_state(d, buf)) < 0 ||
		    table_add(&t, j_str(d, "reason") ?: j_str(c, "reason")) < 0)
			return oom();
	}
	table_print(&t, ctl->legend);
	return CTL_EXIT_OK;
}

static int verb_cordon(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *body = NULL, *doc = NULL;
	int r;

	body = json_pack("{s:s}", "device", args[0]);
	if (!body || (ctl->reason && json_object_set_new(body, "reason",
							 json_string(ctl->reason)) < 0))
		return oom();
	r = ctl_call_body(ctl, "POST", "/v1/cordon", body, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	printf("Device %s cordoned: %s\n", j_str(doc, "device") ?: args[0],
	       j_str(doc, "reason") ?: "-");
	return CTL_EXIT_OK;
}

static int verb_uncordon(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *body = NULL, *doc = NULL;
	int r;

	body = json_pack("{s:s}", "device", args[0]);
	if (!body)
		return oom();
	r = ctl_call_body(ctl, "POST", "/v1/uncordon", body, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	printf("Device %s uncordoned\n", j_str(doc, "device") ?: args[0]);
	return CTL_EXIT_OK;
}

/* The plan entry of @device (a new reference), or NULL with an exit status in *ret. */
static json_t *plan_entry(struct ctl *ctl, const char *device, int *ret)
{
	_cleanup_json_ json_t *doc = NULL;
	const json_t *list;
	json_t *d;
	size_t i;

	*ret = fetch_list(ctl, "/v1/plan", "devices", &doc, &list);
	if (*ret != CTL_EXIT_OK)
		return NULL;
	json_array_foreach(list, i, d)
		if (streq_ptr(j_str(d, "device"), device))
			return json_incref(d);
	*ret = CTL_EXIT_MALFORMED;
	fprintf(stderr, "xpuctl: xpud's plan does not list device %s\n", device);
	return NULL;
}

struct wait_ctx {
	struct ctl *ctl;
	const char *id;
	json_t *entry;	/* the device's plan entry once no repartition is in progress */
	char *failure; /* the reason of a "failed" or "cancelled" end seen on the stream */
	int r;
};

/* Looks at the plan when the stream starts and after each end of a repartition of the device. */
static int on_wait_event(json_t *ev, void *userdata)
{
	struct wait_ctx *w = userdata;
	const char *type = j_str(ev, "type"), *what = j_str(ev, "what");

	if (!streq_ptr(type, "subscribed") &&
	    !(streq_ptr(type, "repartition") && streq_ptr(j_str(ev, "device"), w->id) &&
	      (streq_ptr(what, "done") || streq_ptr(what, "failed") ||
	       streq_ptr(what, "cancelled"))))
		return 0;
	if (!streq_ptr(type, "subscribed") && !streq_ptr(what, "done")) {
		free(w->failure);
		w->failure = strdup(j_str(ev, "reason") ?: what ?: "failed");
		if (!w->failure)
			return -ENOMEM;
	}
	json_decref(w->entry);
	w->entry = plan_entry(w->ctl, w->id, &w->r);
	return !w->entry || !json_is_object(json_object_get(w->entry, "repartition"));
}

/*
 * --wait: follows /v1/events (on a connection of its own) until device @id has no repartition
 * in progress; its plan entry then in *ret_entry. The plan is read once subscribed, so an end
 * that came before the subscription is not missed.
 */
static int wait_repartition(struct ctl *ctl, const char *id, json_t **ret_entry,
			    char **ret_failure)
{
	struct wait_ctx w = { .ctl = ctl, .id = id, .r = CTL_EXIT_OK };
	struct xpu_client *stream = NULL;
	int r;

	r = xpu_client_new(ctl->socket_arg, &stream);
	if (r < 0)
		return transport_error(ctl, r);
	r = xpu_client_stream(stream, "/v1/events", on_wait_event, &w);
	xpu_client_free(stream);
	if (w.r != CTL_EXIT_OK) {
		json_decref(w.entry);
		free(w.failure);
		return w.r;
	}
	if (r != 1 || !w.entry) {
		json_decref(w.entry);
		free(w.failure);
		if (r == -ENOMEM)
			return oom();
		return r < 0 ? transport_error(ctl, r)
			     : malformed(ctl, "the event stream ended before the repartition");
	}
	*ret_entry = w.entry;
	*ret_failure = w.failure;
	return CTL_EXIT_OK;
}

static int verb_repartition(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *body = NULL, *doc = NULL, *entry = NULL;
	_cleanup_free_ char *failure = NULL;
	const char *id, *target;
	const json_t *rp;
	int r;

	if (!ctl->layout == !ctl->to_policy) {
		fprintf(stderr, "xpuctl: repartition needs either --layout LAYOUT or --policy\n");
		return CTL_EXIT_USAGE;
	}
	body = json_pack("{s:s}", "device", args[0]);
	if (!body ||
	    (ctl->layout && json_object_set_new(body, "layout", json_string(ctl->layout)) < 0) ||
	    (ctl->to_policy && json_object_set_new(body, "policy", json_true()) < 0) ||
	    (ctl->timeout && json_object_set_new(body, "timeout", json_string(ctl->timeout)) < 0))
		return oom();
	r = ctl_call_body(ctl, "POST", "/v1/repartition", body, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	id = j_str(doc, "device") ?: args[0];
	rp = json_object_get(doc, "repartition");
	if (!ctl->wait) {
		if (ctl->json)
			return print_json(doc);
		if (json_is_object(rp))
			printf("Device %s: repartitioning to %s (%s)\n", id, j_str(rp, "layout"),
			       j_str(rp, "phase"));
		else if (streq_ptr(j_str(doc, "result"), "unchanged"))
			printf("Device %s: offered so already, nothing changed\n", id);
		else
			printf("Device %s: repartitioned\n", id);
		return CTL_EXIT_OK;
	}
	/* the layout asked for, as the plan writes offers; none when it ended at once */
	target = json_is_object(rp) ? j_str(rp, "layout") : NULL;
	r = wait_repartition(ctl, id, &entry, &failure);
	if (r != CTL_EXIT_OK)
		return r;
	if (failure || (target && !streq_ptr(j_str(entry, "applied"), target))) {
		if (ctl->json) {
			/* the plan entry as it is now, with why the repartition did not happen */
			if (json_object_set_new(entry, "failure",
						json_string(failure ?: "it did not take effect")) < 0)
				return oom();
			r = print_json(entry);
			return r != CTL_EXIT_OK ? r : CTL_EXIT_DAEMON_ERROR;
		}
		printf("Device %s: repartition to %s failed: %s; offered as %s\n", id,
		       target ?: "the layout", failure ?: "it did not take effect",
		       j_str(entry, "applied") ?: "?");
		return CTL_EXIT_DAEMON_ERROR;
	}
	if (ctl->json) {
		r = print_json(entry);
		return r != CTL_EXIT_OK || !j_str(entry, "pending") ? r : CTL_EXIT_DAEMON_ERROR;
	}
	if (j_str(entry, "pending")) {
		printf("Device %s: %s is pending: %s\n", id, j_str(entry, "pending"),
		       j_str(entry, "reason") ?: "-");
		return CTL_EXIT_DAEMON_ERROR;
	}
	printf("Device %s: offered as %s%s%s\n", id, j_str(entry, "applied") ?: "?",
	       json_is_object(json_object_get(entry, "cordon")) ? ", cordoned: " : "",
	       json_is_object(json_object_get(entry, "cordon"))
		       ? j_str(json_object_get(entry, "cordon"), "reason")
		       : "");
	return CTL_EXIT_OK;
}

static int verb_reload(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *doc = NULL;
	int r;

	r = ctl_call(ctl, "POST", "/v1/reload", &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	printf("Configuration reloaded\n");
	return CTL_EXIT_OK;
}

/* ---- events ----------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	stop_requested = 1;
}

struct events_ctx {
	bool json;
	bool output_failed;
};

static void print_event_line(const json_t *ev)
{
	const json_t *dev = json_object_get(ev, "device");
	const char *type = j_str(ev, "type") ?: "?";
	char when[32];

	/* The type padded to the longest known one ("health-changed") keeps IDs aligned. */
	printf("%s ", fmt_time_usec(json_object_get(ev, "time_usec"), when) ?: "-");
	put_sanitized(type, stdout);
	printf("%*s", MAX(14 - (int)strlen(type), 0) + 1, "");
	put_sanitized(j_str(ev, "device_id") ?: j_str(dev, "id") ?: "-", stdout);

	if (streq(type, "health-changed")) {
		const json_t *health = json_object_get(dev, "health");
		const json_t *tr = json_object_get(ev, "transition");
		const char *prev = j_str(json_object_get(ev, "previous"), "state");
		const char *reason = j_str(health, "reason");

		/* the state machine's phases where it made the change, else the states */
		printf(" ");
		put_sanitized((tr ? j_str(tr, "from") : prev) ?: "?", stdout);
		printf(" -> ");
		put_sanitized((tr ? j_str(tr, "to") : health_state(health)) ?: "?", stdout);
		if (tr && j_str(tr, "signal")) {
			printf(" on ");
			put_sanitized(j_str(tr, "signal"), stdout);
		}
		if (tr)
			reason = j_str(tr, "reason");
		if (reason) {
			printf(" (");
			put_sanitized(reason, stdout);
			printf(")");
		}
	} else {
		const char *fields[] = { j_str(dev, "kind"), j_str(dev, "vendor"),
					 j_str(dev, "model") };

		for (size_t i = 0; i < ELEMENTSOF(fields); i++)
			if (fields[i]) {
				putchar(' ');
				put_sanitized(fields[i], stdout);
			}
	}
	putchar('\n');
}

static int on_event(json_t *ev, void *userdata)
{
	struct events_ctx *ctx = userdata;

	if (stop_requested)
		return 1;

	if (ctx->json) {
		_cleanup_free_ char *s = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (!s)
			return -ENOMEM;
		puts(s);
	} else if (streq_ptr(j_str(ev, "type"), "subscribed")) {
		/* The stream's opening handshake, not an event: only -o json shows it. */
		return 0;
	} else
		print_event_line(ev);

	/* One line per event, promptly, also into a pipe. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctx->output_failed = true;
		return 1;
	}
	return stop_requested ? 1 : 0;
}

static int verb_events(struct ctl *ctl, char **args)
{
	struct events_ctx ctx = { .json = ctl->json };
	/* No SA_RESTART: the first signal interrupts the wait; SA_RESETHAND: a second one kills. */
	struct sigaction sa = { .sa_handler = on_stop_signal, .sa_flags = SA_RESETHAND };
	const char *message = NULL;
	int r, status;

	r = ctl_connect(ctl);
	if (r != CTL_EXIT_OK)
		return r;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = xpu_client_stream(ctl->client, "/v1/events", on_event, &ctx);
	if (ctx.output_failed)
		return CTL_EXIT_USAGE; /* reported by main()'s final flush check */
	if (r > 0 || r == 0 || stop_requested)
		return CTL_EXIT_OK;

	status = xpu_client_last_error(ctl->client, &message);
	if (status > 0) {
		json_t *doc = message ? json_pack("{s:s}", "message", message) : NULL;

		r = daemon_error(status, doc);
		json_decref(doc);
		return r;
	}
	return transport_error(ctl, r);
}

/* ---- main ------------------------------------------------------------------------------- */

static void help(void)
{
	printf("xpuctl [OPTIONS...] COMMAND [ARG]\n"
	       "\n"
	       "Query xpud, the accelerator node agent, over its local socket.\n"
	       "\n"
	       "Commands:\n"
	       "  devices             List accelerator devices\n"
	       "  device ID           Show one device; ID is its address (0000:18:00.0), a short\n"
	       "                      PCI address (18:00.0) or its UUID\n"
	       "  slices              List schedulable slices\n"
	       "  capacity            Show capacity per resource\n"
	       "  health              Show node and device health\n"
	       "  events              Follow device events until xpud ends the stream or Ctrl-C\n"
	       "  version             Show client and daemon versions and backends\n"
	       "  rescan              Ask xpud to rescan devices (needs privilege)\n"
	       "  alloc, release, allocations, fit, plan, reload\n"
	       "                      Allocations and the partition plan (see docs/xpuctl.md)\n"
	       "  cordon DEVICE [--reason TEXT]\n"
	       "                      Withdraw a device's free slices; slices in use keep running\n"
	       "  uncordon DEVICE     Offer its free slices again\n"
	       "  repartition DEVICE --layout LAYOUT|--policy [--timeout DURATION] [--wait]\n"
	       "                      Change one device's layout without draining the node:\n"
	       "                      LAYOUT is a partition rule's offer ('mig: [3g.40gb, 3g.40gb]',\n"
	       "                      'replicas: 4', 'whole: true'); --policy goes back to the\n"
	       "                      configuration's; --wait follows it to the end\n"
	       "\n"
	       "Options:\n"
	       "  -h --help           Show this help\n"
	       "  -V --version        Show the client version\n"
	       "     --socket PATH    xpud's socket (default: $XPUD_SOCKET, else %s)\n"
	       "  -o --output FORMAT  table (default) or json: the daemon's document as returned\n"
	       "     --no-legend      Omit column headers\n"
	       "\n"
	       "Exit status:\n"
	       "  0  success\n"
	       "  1  usage error, or a local failure (out of memory, output not writable)\n"
	       "  2  xpud answered with an error; its message is printed\n"
	       "  3  xpud cannot be reached: not running, wrong socket, connection lost or timed "
	       "out\n"
	       "  4  xpud's answer was malformed\n",
	       XPU_DEFAULT_SOCKET);
}

struct verb {
	const char *name;
	unsigned n_args;
	const char *usage;
	int (*run)(struct ctl *ctl, char **args);
	bool alloc_options; /* takes --numa-local, --owner-*, ... */
	bool fit_options;   /* takes --memory, --compute, ... */
	bool cordon_options; /* takes --reason */
	bool repartition_options; /* takes --layout, --policy, --timeout, --wait */
};

static const struct verb verbs[] = {
	{ "devices", 0, "devices", verb_devices },
	{ "device", 1, "device ID", verb_device },
	{ "slices", 0, "slices", verb_slices },
	{ "capacity", 0, "capacity", verb_capacity },
	{ "health", 0, "health", verb_health },
	{ "events", 0, "events", verb_events },
	{ "version", 0, "version", verb_version },
	{ "rescan", 0, "rescan", verb_rescan },
	{ "alloc", 1,
	  "alloc RESOURCE[=COUNT] [--numa-local] [--connected] [--device ID] "
	  "[--owner-pid PID|--owner-unit UNIT|--owner-cgroup PATH|--owner-pod POD]",
	  verb_alloc, true },
	{ "release", 1, "release ID", verb_release },
	{ "allocations", 0, "allocations", verb_allocations },
	{ "fit", 0,
	  "fit [--memory SIZE] [--compute FRACTION] [--count N] [--kind KIND] [--resource NAME]",
	  verb_fit, false, true },
	{ "plan", 0, "plan", verb_plan },
	{ "reload", 0, "reload", verb_reload },
	{ "cordon", 1, "cordon DEVICE [--reason TEXT]", verb_cordon, .cordon_options = true },
	{ "uncordon", 1, "uncordon DEVICE", verb_uncordon },
	{ "repartition", 1,
	  "repartition DEVICE --layout LAYOUT|--policy [--timeout DURATION] [--wait]",
	  verb_repartition, .repartition_options = true },
};

static int usage_error(const char *fmt, ...) _printf_(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("xpuctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see xpuctl --help)\n", stderr);
	return CTL_EXIT_USAGE;
}

enum {
	ARG_SOCKET = 0x100,
	ARG_NO_LEGEND,
	ARG_NUMA_LOCAL,
	ARG_CONNECTED,
	ARG_DEVICE,
	ARG_OWNER_PID,
	ARG_OWNER_UNIT,
	ARG_OWNER_CGROUP,
	ARG_OWNER_POD,
	ARG_MEMORY,
	ARG_COMPUTE,
	ARG_COUNT,
	ARG_KIND,
	ARG_RESOURCE,
	ARG_REASON,
	ARG_LAYOUT,
	ARG_POLICY,
	ARG_TIMEOUT,
	ARG_WAIT,
};

static int parse_argv(int argc, char *argv[], struct ctl *ctl, bool *ret_done)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "socket", required_argument, NULL, ARG_SOCKET },
		{ "output", required_argument, NULL, 'o' },
		{ "no-legend", no_argument, NULL, ARG_NO_LEGEND },
		{ "numa-local", no_argument, NULL, ARG_NUMA_LOCAL },
		{ "connected", no_argument, NULL, ARG_CONNECTED },
		{ "device", required_argument, NULL, ARG_DEVICE },
		{ "owner-pid", required_argument, NULL, ARG_OWNER_PID },
		{ "owner-unit", required_argument, NULL, ARG_OWNER_UNIT },
		{ "owner-cgroup", required_argument, NULL, ARG_OWNER_CGROUP },
		{ "owner-pod", required_argument, NULL, ARG_OWNER_POD },
		{ "memory", required_argument, NULL, ARG_MEMORY },
		{ "compute", required_argument, NULL, ARG_COMPUTE },
		{ "count", required_argument, NULL, ARG_COUNT },
		{ "kind", required_argument, NULL, ARG_KIND },
		{ "resource", required_argument, NULL, ARG_RESOURCE },
		{ "reason", required_argument, NULL, ARG_REASON },
		{ "layout", required_argument, NULL, ARG_LAYOUT },
		{ "policy", no_argument, NULL, ARG_POLICY },
		{ "timeout", required_argument, NULL, ARG_TIMEOUT },
		{ "wait", no_argument, NULL, ARG_WAIT },
		{}
	};
	static const char *const owner_kinds[] = {
		/* offsets from the first, like the rows below */
		/* NOLINTNEXTLINE(misc-redundant-expression) */
		[ARG_OWNER_PID - ARG_OWNER_PID] = "pid",
		[ARG_OWNER_UNIT - ARG_OWNER_PID] = "unit",
		[ARG_OWNER_CGROUP - ARG_OWNER_PID] = "cgroup",
		[ARG_OWNER_POD - ARG_OWNER_PID] = "pod",
	};
	int c;

	*ret_done = false;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hVo:", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			*ret_done = true;
			return CTL_EXIT_OK;
		case 'V':
			printf("xpuctl %s\n", XPU_VERSION);
			*ret_done = true;
			return CTL_EXIT_OK;
		case ARG_SOCKET:
			if (isempty(optarg))
				return usage_error("--socket needs a path");
			ctl->socket_arg = optarg;
			break;
		case 'o':
			if (streq(optarg, "json"))
				ctl->json = true;
			else if (streq(optarg, "table"))
				ctl->json = false;
			else
				return usage_error("unknown output format '%s' (table, json)",
						   optarg);
			break;
		case ARG_NO_LEGEND:
			ctl->legend = false;
			break;
		case ARG_NUMA_LOCAL:
			ctl->numa_local = true;
			ctl->n_alloc_options++;
			break;
		case ARG_CONNECTED:
			ctl->connected = true;
			ctl->n_alloc_options++;
			break;
		case ARG_DEVICE:
			ctl->device = optarg;
			ctl->n_alloc_options++;
			break;
		case ARG_OWNER_PID:
		case ARG_OWNER_UNIT:
		case ARG_OWNER_CGROUP:
		case ARG_OWNER_POD:
			if (ctl->owner_kind)
				return usage_error("only one --owner-* option may be given");
			if (isempty(optarg))
				return usage_error("%s needs a value", argv[optind - 1]);
			ctl->owner_kind = owner_kinds[c - ARG_OWNER_PID];
			ctl->owner_value = optarg;
			ctl->n_alloc_options++;
			break;
		case ARG_MEMORY:
			ctl->memory = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_COMPUTE:
			ctl->compute = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_COUNT:
			ctl->count = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_KIND:
			ctl->kind = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_RESOURCE:
			ctl->resource = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_REASON:
			ctl->reason = optarg;
			ctl->n_cordon_options++;
			break;
		case ARG_LAYOUT:
			if (isempty(optarg))
				return usage_error("--layout needs a layout, e.g. 'mig: all-1g.10gb'");
			ctl->layout = optarg;
			ctl->n_repartition_options++;
			break;
		case ARG_POLICY:
			ctl->to_policy = true;
			ctl->n_repartition_options++;
			break;
		case ARG_TIMEOUT:
			ctl->timeout = optarg;
			ctl->n_repartition_options++;
			break;
		case ARG_WAIT:
			ctl->wait = true;
			ctl->n_repartition_options++;
			break;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt > 0 && optopt < 0x100)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	return CTL_EXIT_OK;
}

int main(int argc, char *argv[])
{
	struct ctl ctl = { .legend = true };
	const struct verb *verb = NULL;
	unsigned n_args;
	bool done;
	int r;

	r = parse_argv(argc, argv, &ctl, &done);
	if (r != CTL_EXIT_OK || done)
		return r;

	if (optind >= argc)
		return usage_error("missing command");
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[optind], verbs[i].name))
			verb = &verbs[i];
	if (!verb)
		return usage_error("unknown command '%s'", argv[optind]);
	n_args = (unsigned)(argc - optind - 1);
	if (n_args != verb->n_args)
		return usage_error("usage: xpuctl %s", verb->usage);
	if ((ctl.n_alloc_options && !verb->alloc_options) ||
	    (ctl.n_fit_options && !verb->fit_options) ||
	    (ctl.n_cordon_options && !verb->cordon_options) ||
	    (ctl.n_repartition_options && !verb->repartition_options))
		return usage_error("that option does not apply to '%s'; usage: xpuctl %s",
				   verb->name, verb->usage);

	r = verb->run(&ctl, argv + optind + 1);
	xpu_client_free(ctl.client);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "xpuctl: failed to write output: %s\n", strerror(errno));
		return CTL_EXIT_USAGE;
	}
	return r;
}
