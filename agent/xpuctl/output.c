// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

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

void put_sanitized(const char *s, FILE *f)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

int print_json(const json_t *doc)
{
	_cleanup_free_ char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (!s)
		return oom();
	puts(s);
	return CTL_EXIT_OK;
}

void print_field(const char *key, const char *value)
{
	int pad = KEY_WIDTH - (int)strlen(key) - 1;

	printf("%s:%*s", key, MAX(pad, 1), "");
	put_sanitized(isempty(value) ? "-" : value, stdout);
	putchar('\n');
}

void print_continuation(const char *value)
{
	printf("%*s", KEY_WIDTH, "");
	put_sanitized(value, stdout);
	putchar('\n');
}

void print_list_item(const char *key, size_t i, const char *value)
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

/* Display width in columns, counting UTF-8 sequences rather than bytes. */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void table_flush(const struct table *t, bool legend, FILE *f)
{
	size_t first = legend ? 0 : t->n_columns;
	size_t widths[16] = {};

	if (t->n_columns == 0 || t->n_columns > ELEMENTSOF(widths))
		return;
	for (size_t i = first; i < t->n_cells; i++)
		widths[i % t->n_columns] = MAX(widths[i % t->n_columns], text_width(t->cells[i]));

	for (size_t i = first; i < t->n_cells; i++) {
		size_t col = i % t->n_columns;

		fputs(t->cells[i], f);
		if (col + 1 == t->n_columns || i + 1 == t->n_cells)
			fputc('\n', f);
		else
			fprintf(f, "%*s", (int)(widths[col] - text_width(t->cells[i]) + 2), "");
	}
}

/* The value at @path below @o: "a.b" is member "b" of member "a". */
static const json_t *json_at(const json_t *o, const char *path)
{
	const char *dot;

	while ((dot = strchr(path, '.'))) {
		char key[64];

		if ((size_t)(dot - path) >= sizeof(key))
			return NULL;
		memcpy(key, path, dot - path);
		key[dot - path] = '\0';
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return json_object_get(o, path);
}

static const char *column_cell(const struct column *c, const json_t *row, char buf[static CELL_MAX])
{
	const json_t *v;

	if (c->get)
		return c->get(row, buf, CELL_MAX);
	v = json_at(row, c->path);
	switch (c->format) {
	case COLUMN_INT:
		return fmt_int(v, buf);
	case COLUMN_BYTES:
		return fmt_bytes(v, buf);
	case COLUMN_FRACTION:
		return fmt_fraction(v, buf);
	case COLUMN_YES_NO:
		return fmt_bool(v);
	case COLUMN_HEALTH:
		return health_state(v);
	case COLUMN_STRING:
	default:
		return json_string_value(v);
	}
}

int table_fprint(FILE *f, const struct column *columns, size_t n_columns, const json_t *rows,
		 bool legend)
{
	_cleanup_(table_done) struct table t = { .n_columns = n_columns };
	const json_t *row;
	size_t i;

	for (size_t c = 0; c < n_columns; c++)
		if (table_add(&t, columns[c].header) < 0)
			return -ENOMEM;
	json_array_foreach(rows, i, row) {
		for (size_t c = 0; c < n_columns; c++) {
			char buf[CELL_MAX];

			if (table_add(&t, column_cell(&columns[c], row, buf)) < 0)
				return -ENOMEM;
		}
	}
	table_flush(&t, legend, f);
	return 0;
}

int table_print(const struct column *columns, size_t n_columns, const json_t *rows, bool legend)
{
	return table_fprint(stdout, columns, n_columns, rows, legend);
}

/* ---- JSON field formatting -------------------------------------------------------------- */

const char *j_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

const char *fmt_int(const json_t *v, char buf[static 32])
{
	if (!json_is_integer(v))
		return NULL;
	snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

const char *fmt_bytes(const json_t *v, char buf[static 32])
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
const char *fmt_fraction(const json_t *v, char buf[static 32])
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

const char *fmt_time_usec(const json_t *v, char buf[static 32])
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

const char *fmt_bool(const json_t *v)
{
	return json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no") : NULL;
}

const char *health_state(const json_t *v)
{
	return json_is_object(v) ? j_str(v, "state") : json_string_value(v);
}

const char *fmt_link(const json_t *speed, const json_t *width, char buf[static 64])
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

const char *strip_hex_prefix(const char *s)
{
	if (s && (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0))
		return s + 2;
	return s;
}
