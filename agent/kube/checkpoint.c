// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/checkpoint.h"
#include "shared/macro.h"
#include "shared/strv.h"

#define CHECKPOINT_MAX_ENTRIES 65536
#define CHECKPOINT_MAX_STRING 1024

void kubelet_entries_free(struct kubelet_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].pod_uid);
		free(e[i].container);
		free(e[i].resource);
		strv_free(e[i].ids);
	}
	free(e);
}

static const char *short_string(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > CHECKPOINT_MAX_STRING ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/* An array of id strings into @ids. 0, -EINVAL (not such an array), -ENOMEM. */
static int add_ids(json_t *a, char ***ids)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a))
		return -EINVAL;
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > CHECKPOINT_MAX_STRING)
			return -EINVAL;
		if (strv_extend_unique(ids, json_string_value(v)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* DeviceIDs: a list (older kubelets), or NUMA node -> list. */
static int parse_ids(json_t *v, char ***ret)
{
	_cleanup_strv_free_ char **ids = NULL;
	const char *key;
	json_t *a;
	int r;

	if (json_is_array(v)) {
		r = add_ids(v, &ids);
	} else if (json_is_object(v)) {
		r = 0;
		json_object_foreach(v, key, a) {
			r = add_ids(a, &ids);
			if (r < 0)
				break;
		}
	} else {
		r = -EINVAL;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ids);
	return 0;
}

int kubelet_checkpoint_parse(const char *text, size_t len, struct kubelet_entry **ret,
			     size_t *ret_n, char **ret_error)
{
	struct kubelet_entry *l = NULL;
	json_t *doc, *entries, *e;
	json_error_t err;
	size_t n = 0, i;
	int r = 0;

	doc = json_loadb(text, len, 0, &err);
	entries = json_object_get(json_object_get(doc, "Data"), "PodDeviceEntries");
	if (!json_is_object(doc) || (entries && !json_is_array(entries) && !json_is_null(entries))) {
		if (asprintf(ret_error, "not a kubelet device checkpoint%s%s", doc ? "" : ": ",
			     doc ? "" : err.text) < 0)
			*ret_error = NULL;
		json_decref(doc);
		return -EBADMSG;
	}
	if (json_array_size(entries) > CHECKPOINT_MAX_ENTRIES) {
		*ret_error = strdup("too many entries");
		json_decref(doc);
		return -EBADMSG;
	}
	l = calloc(json_array_size(entries) + 1, sizeof(*l));
	if (!l) {
		json_decref(doc);
		return -ENOMEM;
	}
	json_array_foreach(entries, i, e) {
		const char *uid = short_string(e, "PodUID"), *ctr = short_string(e, "ContainerName"),
			   *res = short_string(e, "ResourceName");
		char **ids = NULL;

		if (!uid || !ctr || !res)
			continue; /* not ours to judge: skip what we cannot read */
		r = parse_ids(json_object_get(e, "DeviceIDs"), &ids);
		if (r == -ENOMEM)
			break;
		if (r < 0 || !ids) {
			r = 0;
			continue;
		}
		l[n] = (struct kubelet_entry){ .ids = ids };
		if (!(l[n].pod_uid = strdup(uid)) || !(l[n].container = strdup(ctr)) ||
		    !(l[n].resource = strdup(res))) {
			n++;
			r = -ENOMEM;
			break;
		}
		n++;
	}
	json_decref(doc);
	if (r < 0) {
		kubelet_entries_free(l, n);
		return r;
	}
	*ret = l;
	*ret_n = n;
	return 0;
}
