// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NFD local feature file: the labels each device source's rules give its devices (the
 * vendors' own label names, so that node selectors written for their labellers keep working),
 * and under xpu.dev/ what they have no name for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/rules.h"
#include "kube/nfd.h"
#include "shared/clock.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/strv.h"

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int nfd_label_value(const char *s, char **ret)
{
	_cleanup_free_ char *v = strndup(s, strlen(s));
	size_t n = 0, start = 0;

	if (!v)
		return -ENOMEM;
	for (char *p = v; *p; p++)
		if (!is_alnum(*p) && *p != '.' && *p != '_' && *p != '-')
			*p = '-';
	while (v[start] && !is_alnum(v[start]))
		start++;
	memmove(v, v + start, strlen(v + start) + 1);
	n = strlen(v);
	if (n > NFD_LABEL_VALUE_MAX)
		n = NFD_LABEL_VALUE_MAX;
	while (n > 0 && !is_alnum(v[n - 1]))
		n--;
	v[n] = '\0';
	*ret = n > 0 ? TAKE_PTR(v) : NULL;
	return 0;
}

/* A label whose value is made valid first; none when nothing valid is left of it. */
static int add_label(char ***l, const char *key, const char *value)
{
	_cleanup_free_ char *v = NULL;
	int r;

	if (!value)
		return 0;
	r = nfd_label_value(value, &v);
	if (r < 0 || !v)
		return r;
	return strv_extendf(l, "%s=%s", key, v);
}

static int add_label_u(char ***l, const char *key, unsigned long long value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", value);
	return add_label(l, key, buf);
}

/* A vendor name as the name part of a label key: lower case, [a-z0-9-]. */
static char *vendor_key(const char *vendor)
{
	char *k = NULL;

	if (nfd_label_value(vendor, &k) < 0 || !k)
		return NULL;
	for (char *p = k; *p; p++)
		*p = is_alnum(*p) ? (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p) : '-';
	return k;
}

/* A "KEY=VALUE" label from a device source's rules, its value made valid first. */
static int add_raw_label(char ***l, const char *kv)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *key = eq ? strndup(kv, (size_t)(eq - kv)) : NULL;

	if (!eq || eq == kv)
		return 0;
	return key ? add_label(l, key, eq + 1) : -ENOMEM;
}

/* The labels the rules of the node's devices add: once per rules, with all of their devices. */
static int rules_labels(const struct device_list *devs, char ***l)
{
	_cleanup_free_ const struct xpu_device **group = calloc(devs->n + 1, sizeof(*group));

	if (!group)
		return -ENOMEM;
	for (size_t i = 0; i < devs->n; i++) {
		const struct device_rules *rules = devs->items[i]->rules;
		_cleanup_strv_free_ char **raw = NULL;
		size_t n = 0;
		bool done = false;
		int r;

		for (size_t j = 0; j < i && !done; j++)
			done = devs->items[j]->rules == rules;
		if (done || !rules || !rules->node_labels)
			continue;
		for (size_t j = i; j < devs->n; j++)
			if (devs->items[j]->rules == rules)
				group[n++] = devs->items[j];
		r = rules->node_labels(group, n, &raw);
		STRV_FOREACH(kv, raw)
			if (r >= 0)
				r = add_raw_label(l, *kv);
		if (r < 0)
			return r;
	}
	return 0;
}

int nfd_labels(const struct device_list *devs, char ***ret)
{
	_cleanup_strv_free_ char **labels = NULL, **vendors = NULL;
	unsigned kinds[_XPU_KIND_MAX] = {}, n_numa = 0;
	_cleanup_free_ int *numa = NULL;
	int r;

	numa = calloc(devs->n + 1, sizeof(*numa));
	labels = calloc(1, sizeof(char *));
	if (!numa || !labels)
		return -ENOMEM;
	for (size_t i = 0; i < devs->n; i++) {
		const struct xpu_device *d = devs->items[i];
		bool seen = false;

		if (d->kind >= 0 && d->kind < _XPU_KIND_MAX)
			kinds[d->kind]++;
		if (d->vendor && strv_extend_unique(&vendors, d->vendor) < 0)
			return -ENOMEM;
		for (unsigned j = 0; j < n_numa; j++)
			seen |= numa[j] == d->numa_node;
		if (d->numa_node >= 0 && !seen)
			numa[n_numa++] = d->numa_node;
	}

	r = rules_labels(devs, &labels);
	STRV_FOREACH(v, vendors) {
		_cleanup_free_ char *k = vendor_key(*v), *key = NULL;

		if (r < 0 || !k)
			continue;
		if (asprintf(&key, "xpu.dev/%s.present", k) < 0)
			return -ENOMEM;
		r = add_label(&labels, key, "true");
	}
	for (enum xpu_kind k = 0; k < _XPU_KIND_MAX && r >= 0; k++) {
		_cleanup_free_ char *key = NULL;

		if (kinds[k] == 0)
			continue;
		if (asprintf(&key, "xpu.dev/%s.count", xpu_kind_to_string(k)) < 0)
			return -ENOMEM;
		r = add_label_u(&labels, key, kinds[k]);
	}
	if (r >= 0 && n_numa > 0)
		r = add_label_u(&labels, "xpu.dev/numa-nodes", n_numa);
	if (r < 0)
		return r;
	strv_sort(labels);
	*ret = TAKE_PTR(labels);
	return 0;
}

int nfd_format_time(uint64_t realtime_usec, char *buf, size_t size)
{
	time_t t = (time_t)(realtime_usec / 1000000ULL);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -EINVAL;
	return 0;
}

int nfd_document(char *const *labels, uint64_t expiry_usec, char **ret)
{
	_cleanup_free_ char *body = NULL;
	char when[32];
	char *doc;
	int r;

	r = nfd_format_time(expiry_usec, when, sizeof(when));
	if (r < 0)
		return r;
	body = strv_join(labels, "\n");
	if (!body)
		return -ENOMEM;
	if (asprintf(&doc, "# +expiry-time=%s\n%s%s", when, body, *body ? "\n" : "") < 0)
		return -ENOMEM;
	*ret = doc;
	return 0;
}

/* ---- the writer ------------------------------------------------------------------------ */

struct nfd_writer {
	sd_event *event;
	struct inventory *inventory;
	char *dir;
	sd_event_source *post;
	sd_event_source *refresh;
	uint64_t generation;
	bool dirty;
	bool failing;
	char **labels; /* written last; NULL until the first write */
};

/* Writes the file with @labels (taken) and a new expiry; arms the next refresh. */
static void nfd_write(struct nfd_writer *w, char **labels)
{
	_cleanup_strv_free_ char **l = labels;
	_cleanup_free_ char *doc = NULL;
	_cleanup_close_ int dfd = -EBADF;
	uint64_t now;
	int r;

	r = nfd_document(l, now_usec(CLOCK_REALTIME) + NFD_EXPIRY_USEC, &doc);
	if (r >= 0) {
		dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = dfd < 0 ? -errno : write_file_atomic_at(dfd, NFD_FILE, doc, strlen(doc), 0644);
	}
	if (r < 0) {
		if (!w->failing)
			log_warning_errno(r,
					  "Failed to write the node labels to %s/%s, ignoring: %m",
					  w->dir, NFD_FILE);
		w->failing = true;
		w->labels = strv_free(w->labels); /* write again at the next change */
	} else {
		if (w->failing || !w->labels)
			log_info("Node labels written to %s/%s (%zu labels).", w->dir, NFD_FILE,
				 strv_length(l));
		w->failing = false;
		strv_free(w->labels);
		w->labels = TAKE_PTR(l);
	}
	/* a failed write is retried by the refresh too, without a busy loop */
	if (sd_event_now(w->event, CLOCK_MONOTONIC, &now) >= 0)
		(void)sd_event_source_set_time(w->refresh, now + NFD_REFRESH_USEC);
	(void)sd_event_source_set_enabled(w->refresh, SD_EVENT_ONESHOT);
}

static char **nfd_current(struct nfd_writer *w)
{
	char **l = NULL;

	if (nfd_labels(inventory_devices(w->inventory), &l) < 0) {
		log_oom();
		return NULL;
	}
	return l;
}

static int on_post(sd_event_source *s, void *userdata)
{
	struct nfd_writer *w = userdata;
	uint64_t g = inventory_generation(w->inventory);
	char **l;

	if (!w->dirty && g == w->generation)
		return 0;
	w->dirty = false;
	w->generation = g;
	l = nfd_current(w);
	if (!l)
		return 0;
	if (w->labels && strv_equal(l, w->labels)) {
		strv_free(l);
		return 0;
	}
	nfd_write(w, l);
	return 0;
}

static int on_refresh(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct nfd_writer *w = userdata;
	char **l = nfd_current(w);

	if (l)
		nfd_write(w, l);
	return 0;
}

int nfd_writer_new(sd_event *e, const char *dir, struct inventory *inv, struct nfd_writer **ret)
{
	_cleanup_(nfd_writer_freep) struct nfd_writer *w = NULL;
	struct stat st;
	char **l;
	int r;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_info("No Node Feature Discovery directory %s: node labels are off.", dir);
		return -ENOENT;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return log_oom();
	w->event = sd_event_ref(e);
	w->inventory = inv;
	w->dir = strdup(dir);
	if (!w->dir)
		return log_oom();
	r = sd_event_add_post(e, &w->post, on_post, w);
	if (r >= 0)
		r = sd_event_add_time_relative(e, &w->refresh, CLOCK_MONOTONIC, NFD_REFRESH_USEC,
					       1000000ULL, on_refresh, w);
	if (r < 0)
		return log_error_errno(r, "Failed to set up node labels: %m");
	(void)sd_event_source_set_description(w->post, "nfd-labels");
	(void)sd_event_source_set_description(w->refresh, "nfd-refresh");
	w->generation = inventory_generation(inv);
	l = nfd_current(w);
	if (l)
		nfd_write(w, l);
	*ret = TAKE_PTR(w);
	return 0;
}

struct nfd_writer *nfd_writer_free(struct nfd_writer *w)
{
	if (!w)
		return NULL;
	sd_event_source_disable_unref(w->post);
	sd_event_source_disable_unref(w->refresh);
	sd_event_unref(w->event);
	strv_free(w->labels);
	free(w->dir);
	free(w);
	return NULL;
}

void nfd_writer_changed(struct nfd_writer *w)
{
	if (w)
		w->dirty = true;
}
