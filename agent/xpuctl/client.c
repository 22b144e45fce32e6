// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * xpuctl's requests to xpud through libxpu, and what it says when they fail: the connection,
 * the transport, the daemon's error answers and malformed answers each have their exit status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpu/client.h"
#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

const char *ctl_socket(const struct ctl *ctl)
{
	return xpu_client_socket_path(ctl->socket_arg);
}

int oom(void)
{
	fprintf(stderr, "xpuctl: out of memory\n");
	return CTL_EXIT_USAGE;
}

int malformed(const struct ctl *ctl, const char *what)
{
	fprintf(stderr, "xpuctl: malformed answer from xpud at %s: %s\n", ctl_socket(ctl), what);
	return CTL_EXIT_MALFORMED;
}

int ctl_connect(struct ctl *ctl)
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

int transport_error(const struct ctl *ctl, int r)
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

int daemon_error(int status, const json_t *doc)
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

int ctl_request(struct ctl *ctl, const char *method, const char *path, int *ret_status,
		json_t **ret_doc)
{
	return ctl_request_body(ctl, method, path, NULL, ret_status, ret_doc);
}

int ctl_call_body(struct ctl *ctl, const char *method, const char *path, const json_t *body,
		  json_t **ret)
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

int ctl_call(struct ctl *ctl, const char *method, const char *path, json_t **ret)
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

int fetch_list(struct ctl *ctl, const char *path, const char *key, json_t **ret_doc,
	       const json_t **ret_list)
{
	int r = ctl_call(ctl, "GET", path, ret_doc);

	if (r != CTL_EXIT_OK)
		return r;
	*ret_list = doc_array(ctl, *ret_doc, key);
	return *ret_list ? CTL_EXIT_OK : CTL_EXIT_MALFORMED;
}

int list_verb(struct ctl *ctl, const char *path, const char *key, const struct column *columns,
	      size_t n_columns)
{
	_cleanup_json_ json_t *doc = NULL;
	const json_t *list;
	int r;

	r = fetch_list(ctl, path, key, &doc, &list);
	if (r != CTL_EXIT_OK)
		return r;
	if (ctl->json)
		return print_json(doc);
	if (table_print(columns, n_columns, list, ctl->legend) < 0)
		return oom();
	return CTL_EXIT_OK;
}

/* Keeps RFC 3986 unreserved characters and ':'. */
char *path_escape(const char *s)
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
