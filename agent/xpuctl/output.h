/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xpuctl's output: the daemon's documents as indented JSON, as "Key: value" views, and as
 * aligned tables whose columns are described as data. Text that came from the daemon is printed
 * with control characters replaced by '?': it comes from sysfs and vendor libraries and must not
 * drive the terminal.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define KEY_WIDTH 16  /* detail views: "Client version: " */
#define CELL_MAX 1024 /* the buffer a computed table cell is written to */

void put_sanitized(const char *s, FILE *f);
/* @doc indented, to stdout: CTL_EXIT_OK, or the out-of-memory exit status. */
int print_json(const json_t *doc);
/* "Key:            value", the value sanitized; NULL or empty prints "-". */
void print_field(const char *key, const char *value);
/* Continuation line of a multi-value field. */
void print_continuation(const char *value);
/* Item @i of a multi-value field: the key on the first line only. */
void print_list_item(const char *key, size_t i, const char *value);

/* How a column shows the JSON value at its path. NULL, a wrong type and "" show as "-". */
enum column_format {
	COLUMN_STRING,
	COLUMN_INT,
	COLUMN_BYTES,	 /* binary units with one decimal: "80.0 GiB" */
	COLUMN_FRACTION, /* at most two decimals: "0.5" */
	COLUMN_YES_NO,	 /* a boolean */
	COLUMN_HEALTH,	 /* a device's health object or a slice's health string: the state */
};

struct column {
	const char *header;
	const char *path; /* the member of a row; "health.phase" descends into "health" */
	enum column_format format;
	/* Instead of @path and @format: the cell made from the whole row, in @buf when needed. */
	const char *(*get)(const json_t *row, char *buf, size_t size);
};

/*
 * Prints one row per object of the array @rows, one column per entry of @columns (16 at most),
 * each column as wide as its widest cell, the header first with @legend. 0 or -ENOMEM.
 */
int table_print(const struct column *columns, size_t n_columns, const json_t *rows, bool legend);
/* The same to @f. */
int table_fprint(FILE *f, const struct column *columns, size_t n_columns, const json_t *rows,
		 bool legend);

/* The string member @key of @o, or NULL. */
const char *j_str(const json_t *o, const char *key);

/* Formatting of JSON values; NULL when the value is absent or has another type. */
const char *fmt_int(const json_t *v, char buf[static 32]);
const char *fmt_bytes(const json_t *v, char buf[static 32]);
const char *fmt_fraction(const json_t *v, char buf[static 32]);
/* A time in microseconds since the epoch as UTC ("2026-11-26T16:10:01Z"). */
const char *fmt_time_usec(const json_t *v, char buf[static 32]);
const char *fmt_bool(const json_t *v);
/* "32.0 GT/s x16", "32.0 GT/s", "x16", or NULL when neither is known. */
const char *fmt_link(const json_t *speed, const json_t *width, char buf[static 64]);
/* Devices carry {"state":..,"reason":..}; slices carry the state string alone. */
const char *health_state(const json_t *v);
/* PCI ids come as "0x10de"; show them as lspci does. */
const char *strip_hex_prefix(const char *s);
