// SPDX-License-Identifier: GPL-2.0-or-later
/* The partition plan: listing it, cordons, and repartitioning one device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpu/client.h"
#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

/* What a plan entry says of the device's cordon or repartition, for the STATE column. */
static const char *plan_state(const json_t *d, char *buf, size_t size)
{
	const json_t *rp = json_object_get(d, "repartition");

	if (json_is_object(rp)) {
		snprintf(buf, MIN(size, (size_t)64), "repartitioning (%s)",
			 j_str(rp, "phase") ?: "?");
		return buf;
	}
	return json_is_object(json_object_get(d, "cordon")) ? "cordoned" : "-";
}

/* Why the offer is pending, else why the device is cordoned. */
static const char *plan_reason(const json_t *d, char *buf, size_t size)
{
	return j_str(d, "reason") ?: j_str(json_object_get(d, "cordon"), "reason");
}

int verb_plan(struct ctl *ctl, char **args)
{
	static const struct column columns[] = {
		{ "DEVICE", "device" },
		{ "OFFER", "applied" },
		{ "PENDING", "pending" },
		{ "STATE", .get = plan_state },
		{ "REASON", .get = plan_reason },
	};

	return list_verb(ctl, "/v1/plan", "devices", columns, ELEMENTSOF(columns));
}

int verb_cordon(struct ctl *ctl, char **args)
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

int verb_uncordon(struct ctl *ctl, char **args)
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

int verb_repartition(struct ctl *ctl, char **args)
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
