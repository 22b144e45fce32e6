// SPDX-License-Identifier: GPL-2.0-or-later
/* The inventory: devices, one device, slices and capacity. */
#include <stdio.h>
#include <stdlib.h>

#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

int verb_devices(struct ctl *ctl, char **args)
{
	static const struct column columns[] = {
		{ "ID", "id" },
		{ "KIND", "kind" },
		{ "VENDOR", "vendor" },
		{ "MODEL", "model" },
		{ "NUMA", "numa_node", COLUMN_INT },
		{ "MEMORY", "memory_bytes", COLUMN_BYTES },
		{ "DRIVER", "driver" },
		{ "HEALTH", "health", COLUMN_HEALTH },
		{ "PHASE", "health.phase" },
	};

	return list_verb(ctl, "/v1/devices", "devices", columns, ELEMENTSOF(columns));
}

/*
 * GET /v1/devices/{arg}. xpud resolves what operators type (a short PCI address, another letter
 * case, a UUID); an abbreviation that it finds ambiguous is a usage error, with its candidates.
 */
static int device_lookup(struct ctl *ctl, const char *arg, json_t **ret)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *escaped = NULL, *path = NULL;
	int status, r;

	escaped = path_escape(arg);
	if (!escaped || asprintf(&path, "/v1/devices/%s", escaped) < 0)
		return oom();

	r = ctl_request(ctl, "GET", path, &status, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (status < 200 || status > 299) {
		r = daemon_error(status, doc);
		/* an abbreviation of several devices is the user's to make precise: a usage error */
		if (status == 400 && streq_ptr(j_str(doc, "error"), "ambiguous"))
			return CTL_EXIT_USAGE;
		return r;
	}
	if (!json_is_object(doc))
		return malformed(ctl, "expected a JSON object");
	*ret = TAKE_PTR(doc);
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

int verb_device(struct ctl *ctl, char **args)
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

int verb_slices(struct ctl *ctl, char **args)
{
	static const struct column columns[] = {
		{ "ID", "id" },
		{ "RESOURCE", "resource" },
		{ "DEVICE", "device_id" },
		{ "MEMORY", "memory_bytes", COLUMN_BYTES },
		{ "FRACTION", "compute_fraction", COLUMN_FRACTION },
		{ "SHARED", "shared", COLUMN_YES_NO },
		{ "HEALTH", "health", COLUMN_HEALTH },
	};

	return list_verb(ctl, "/v1/slices", "slices", columns, ELEMENTSOF(columns));
}

int verb_capacity(struct ctl *ctl, char **args)
{
	static const struct column columns[] = {
		{ "RESOURCE", "name" },
		{ "TOTAL", "total", COLUMN_INT },
		{ "HEALTHY", "healthy", COLUMN_INT },
		{ "ALLOCATED", "allocated", COLUMN_INT },
		{ "FREE", "free", COLUMN_INT },
	};

	return list_verb(ctl, "/v1/capacity", "resources", columns, ELEMENTSOF(columns));
}
