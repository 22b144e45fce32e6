// SPDX-License-Identifier: GPL-2.0-or-later
/* Allocations: granting, releasing and listing them, and what would fit. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/parse.h"
#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

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
	/* an enforced grant: where it is confined */
	if (j_str(a, "unit"))
		print_field("Confined in", j_str(a, "unit"));
	else if (j_str(a, "cgroup"))
		print_field("Confined in", j_str(a, "cgroup"));
}

int parse_resource_count(const char *arg, char **ret_resource, unsigned *ret_count)
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

int verb_alloc(struct ctl *ctl, char **args)
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
	if ((ctl->memory_max || ctl->cpu_quota) && !ctl->enforce)
		return usage_error("--memory-max and --cpu-quota are limits of --enforce");
	if (ctl->enforce) {
		json_t *enforce;

		if (!ctl->owner_kind || !(streq(ctl->owner_kind, "pid") ||
					  streq(ctl->owner_kind, "unit")))
			return usage_error("--enforce confines the owner: it needs --owner-pid or "
					   "--owner-unit");
		r = enforce_body(ctl, &enforce);
		if (r != CTL_EXIT_OK)
			return r;
		if (json_object_set_new(body, "enforce", enforce) < 0)
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

int verb_release(struct ctl *ctl, char **args)
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

const char *allocation_slices(const json_t *a, char *buf, size_t size)
{
	const json_t *sl;
	size_t j;

	buf[0] = '\0';
	json_array_foreach(json_object_get(a, "slices"), j, sl) {
		size_t n = strlen(buf);

		snprintf(buf + n, size - n, "%s%s", j ? "," : "", j_str(sl, "id") ?: "?");
	}
	return buf;
}

const char *allocation_owner(const json_t *a, char *buf, size_t size)
{
	const json_t *owner = json_object_get(a, "owner");

	snprintf(buf, MIN(size, (size_t)512), "%s%s%s%s", j_str(owner, "kind") ?: "-",
		 j_str(owner, "value") ? " " : "", j_str(owner, "value") ?: "",
		 json_is_true(json_object_get(a, "release_pending")) ? " (gone, release pending)"
								       : "");
	return buf;
}

int verb_allocations(struct ctl *ctl, char **args)
{
	static const struct column columns[] = {
		{ "ID", "id" },
		{ "RESOURCE", "resource" },
		{ "SLICES", .get = allocation_slices },
		{ "OWNER", .get = allocation_owner },
	};

	return list_verb(ctl, "/v1/allocations", "allocations", columns, ELEMENTSOF(columns));
}

int fit_body(const struct ctl *ctl, json_t **ret)
{
	_cleanup_json_ json_t *body = json_object();
	uint64_t bytes;

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
	    (ctl->resource && json_object_set_new(body, "resource", json_string(ctl->resource)) < 0) ||
	    (ctl->numa_local && json_object_set_new(body, "numa_local", json_true()) < 0) ||
	    (ctl->connected && json_object_set_new(body, "connected", json_true()) < 0))
		return oom();
	*ret = TAKE_PTR(body);
	return CTL_EXIT_OK;
}

int verb_fit(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *body = NULL, *doc = NULL;
	const json_t *v;
	size_t i;
	int r;

	r = fit_body(ctl, &body);
	if (r != CTL_EXIT_OK)
		return r;
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
