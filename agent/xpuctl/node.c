// SPDX-License-Identifier: GPL-2.0-or-later
/* The daemon itself: its health and version, and asking it to rescan or reload. */
#include <stdio.h>
#include <stdlib.h>

#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

int verb_health(struct ctl *ctl, char **args)
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

int verb_version(struct ctl *ctl, char **args)
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
		const json_t *klog = json_object_get(b, "kernel_log");
		int k;

		if (json_is_true(json_object_get(b, "available")) && j_str(klog, "reads") &&
		    streq_ptr(j_str(klog, "state"), "reading"))
			k = asprintf(&s, "%s (available; %s from the kernel log)",
				     j_str(b, "name") ?: "?", j_str(klog, "reads"));
		else if (json_is_true(json_object_get(b, "available")) && j_str(klog, "reads"))
			k = asprintf(&s, "%s (available; %s not read: %s)", j_str(b, "name") ?: "?",
				     j_str(klog, "reads"), j_str(klog, "reason") ?: "not started");
		else if (json_is_true(json_object_get(b, "available")))
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

int verb_rescan(struct ctl *ctl, char **args)
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

int verb_reload(struct ctl *ctl, char **args)
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
