// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Exports for other schedulers and for scripts: Slurm's gres.conf (and the Gres= of the node's
 * slurm.conf line) from the slices xpud offers now, and one versioned JSON document of the
 * inventory, the slices, the capacity and a fit (docs/export.schema.json).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

/* The version of the document `export json` prints; docs/export.schema.json describes it. */
#define EXPORT_SCHEMA_VERSION 1

/* One gres.conf line: a slice xpud offers, with what Slurm needs to know of it. */
struct gres_line {
	const json_t *slice, *device;
	const char *name;  /* gpu, accel, fpga: the GRES name */
	char type[64];	   /* the model's short name, and the partition's profile */
	char *files;	   /* the slice's own device nodes, comma-separated */
	size_t n_files;
	char cores[128];   /* "" when unknown */
	size_t order;	   /* its place in GET /v1/slices, for a stable sort */
};

static void gres_lines_free(struct gres_line *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i].files);
	free(lines);
}

/* The GRES name of a device kind: Slurm's gpu plugin takes "gpu"; the others are plain names. */
static const char *gres_name(const char *kind)
{
	if (streq_ptr(kind, "accel") || streq_ptr(kind, "fpga"))
		return kind;
	return "gpu";
}

/* Appends @word, lower-cased, to @buf with anything but [a-z0-9.-] as '_'. */
static void type_append(char *buf, size_t size, const char *word, size_t len)
{
	size_t n = strlen(buf);

	for (size_t i = 0; i < len && n + 1 < size; i++) {
		unsigned char c = (unsigned char)tolower((unsigned char)word[i]);

		buf[n++] = (isalnum(c) || c == '.' || c == '-') ? (char)c : '_';
	}
	buf[n] = '\0';
}

static bool word_is_model_number(const char *w, size_t len)
{
	bool alpha = false, digit = false;

	if (len > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X'))
		return false; /* "altera device 0x0000": an ID, not a name */
	for (size_t i = 0; i < len; i++) {
		alpha |= !!isalpha((unsigned char)w[i]);
		digit |= !!isdigit((unsigned char)w[i]);
	}
	return alpha && digit;
}

/*
 * The short name Slurm's Type= takes from a model name, lower-cased: its first word with letters
 * and digits after the vendor's ("NVIDIA H100 80GB HBM3": h100, "AMD Instinct MI300X": mi300x,
 * "Habana Gaudi2": gaudi2), else its words after the vendor's joined by '_'
 * ("Google Coral Edge TPU": coral_edge_tpu), else the kind.
 */
static void type_from_model(const char *model, const char *vendor, const char *kind, char *buf,
			    size_t size)
{
	const char *sep = " \t()[],/";
	const char *p = model ?: "";
	bool first = true;

	buf[0] = '\0';
	for (size_t pass = 0; pass < 2 && !buf[0]; pass++) {
		first = true;
		for (p = model ?: ""; *p;) {
			size_t len;

			p += strspn(p, sep);
			len = strcspn(p, sep);
			if (!len)
				break;
			if (first && vendor && strlen(vendor) == len && strncasecmp(p, vendor, len) == 0) {
				first = false;
				p += len;
				continue;
			}
			first = false;
			if (pass == 0 && word_is_model_number(p, len)) {
				type_append(buf, size, p, len);
				break;
			}
			if (pass == 1) {
				if (buf[0])
					type_append(buf, size, "_", 1);
				type_append(buf, size, p, len);
			}
			p += len;
		}
	}
	if (!buf[0])
		type_append(buf, size, kind ?: "device", strlen(kind ?: "device"));
}

/*
 * The cores of a device's CPU list, as Slurm's Cores= counts them (its logical core index: core
 * 0 is the first core of the first socket). Linux numbers the first thread of every core before
 * the second ones, so a NUMA node's list of two equal ranges ("0-55,112-167") is its cores and
 * their SMT siblings: the first range is the cores. Any other list is taken as one CPU per core.
 * "" when the list is unknown or too long.
 */
static void cores_from_cpu_list(const char *list, char *buf, size_t size)
{
	unsigned long a0, b0, a1, b1;
	int n = -1;

	buf[0] = '\0';
	if (!list || strlen(list) >= size || strspn(list, "0123456789,-") != strlen(list))
		return;
	if (sscanf(list, "%lu-%lu,%lu-%lu%n", &a0, &b0, &a1, &b1, &n) == 4 &&
	    (size_t)n == strlen(list) && a0 < b0 && b0 < a1 && b1 - a1 == b0 - a0) {
		snprintf(buf, size, "%lu-%lu", a0, b0);
		return;
	}
	snprintf(buf, size, "%s", list);
}

/* Whether @path can be one entry of a File= list: absolute, no separators, no comment. */
static bool path_listable(const char *path)
{
	return path && path[0] == '/' && !strpbrk(path, ",# \t\n\r[]") &&
	       strlen(path) < PATH_MAX;
}

/*
 * The device nodes of one slice alone: those that end in an instance number (nvidia0, card1,
 * renderD128, accel0, nvidia-cap21). What every device of a driver shares (its control and
 * memory-manager nodes: nvidiactl, kfd) is no GRES of its own, and Slurm's cgroup rules leave
 * the nodes that no GRES names open to every job.
 */
static int slice_files(const json_t *slice, const char *dev_prefix, struct gres_line *line)
{
	_cleanup_free_ char *out = NULL;
	size_t len = 0, i;
	const json_t *v;

	json_array_foreach(json_object_get(slice, "device_nodes"), i, v) {
		const char *node = json_string_value(v);
		size_t n;
		char *grown;
		int w;

		if (!path_listable(node) || !isdigit((unsigned char)node[strlen(node) - 1]))
			continue;
		if (dev_prefix && strncmp(node, "/dev/", 5) == 0)
			n = strlen(dev_prefix) + strlen(node) + 2;
		else
			n = strlen(node) + 2;
		grown = realloc(out, len + n);
		if (!grown)
			return -ENOMEM;
		out = grown;
		if (dev_prefix && strncmp(node, "/dev/", 5) == 0)
			w = snprintf(out + len, n, "%s%s%s", len ? "," : "", dev_prefix, node + 4);
		else
			w = snprintf(out + len, n, "%s%s", len ? "," : "", node);
		len += (size_t)w;
		line->n_files++;
	}
	line->files = TAKE_PTR(out);
	return 0;
}

/*
 * How well devices @a and @b are connected, as Slurm's Links= counts it (0: nothing better than
 * the host's PCIe): from the properties a backend names a peer by ("<what>.<peer id>"), whose
 * value is a count of links ("NV18": 18, "1"), or "true"; the better of the two sides.
 */
static unsigned link_weight_one(const json_t *a, const char *b_id)
{
	size_t idlen = strlen(b_id);
	unsigned best = 0;
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)json_object_get(a, "properties"), key, v) {
		const char *s = json_string_value(v);
		size_t klen = strlen(key);
		unsigned long n;
		char *end;

		if (!s || klen <= idlen + 1 || key[klen - idlen - 1] != '.' ||
		    !streq(key + klen - idlen, b_id))
			continue;
		if (streq(s, "true")) {
			best = MAX(best, 1u);
			continue;
		}
		while (isalpha((unsigned char)*s))
			s++;
		if (!isdigit((unsigned char)*s))
			continue;
		n = strtoul(s, &end, 10);
		if (*end || n > 1000)
			continue;
		best = MAX(best, (unsigned)n);
	}
	return best;
}

static unsigned link_weight(const json_t *a, const json_t *b)
{
	const char *a_id = j_str(a, "id"), *b_id = j_str(b, "id");

	if (!a_id || !b_id)
		return 0;
	return MAX(link_weight_one(a, b_id), link_weight_one(b, a_id));
}

static int name_rank(const char *name)
{
	return streq(name, "gpu") ? 0 : streq(name, "accel") ? 1 : 2;
}

/* GRES names together (gpu first), else as xpud lists the slices. */
static int gres_line_cmp(const void *x, const void *y)
{
	const struct gres_line *a = x, *b = y;
	int ra = name_rank(a->name), rb = name_rank(b->name);

	if (ra != rb)
		return ra - rb;
	if (ra == 2 && !streq(a->name, b->name))
		return strcmp(a->name, b->name);
	return a->order < b->order ? -1 : a->order > b->order;
}

/* Device id -> device document. */
static json_t *index_devices(const json_t *devices)
{
	_cleanup_json_ json_t *by_id = json_object();
	const json_t *d;
	size_t i;

	if (!by_id)
		return NULL;
	json_array_foreach(devices, i, d)
		if (j_str(d, "id") && json_object_set(by_id, j_str(d, "id"), (json_t *)d) < 0)
			return NULL;
	return TAKE_PTR(by_id);
}

/* Prints "Name=... Type=... File=... Cores=... Links=..." for @lines[k]. */
static void print_gres_line(const struct gres_line *lines, size_t n, size_t k)
{
	const struct gres_line *l = &lines[k];
	size_t first = k, last = k;
	bool links = false;

	printf("Name=%s Type=%s %s=%s", l->name, l->type, l->n_files > 1 ? "MultipleFiles" : "File",
	       l->files);
	if (l->cores[0])
		printf(" Cores=%s", l->cores);

	/* Links: one entry per line of the same name, in their order; only whole devices link */
	while (first > 0 && streq(lines[first - 1].name, l->name))
		first--;
	while (last + 1 < n && streq(lines[last + 1].name, l->name))
		last++;
	for (size_t i = first; i <= last && !links; i++)
		for (size_t j = first; j <= last && !links; j++)
			links = i != j && !j_str(lines[i].slice, "profile") &&
				!j_str(lines[j].slice, "profile") &&
				link_weight(lines[i].device, lines[j].device) > 0;
	if (links) {
		fputs(" Links=", stdout);
		for (size_t j = first; j <= last; j++) {
			unsigned w = 0;

			if (j != k && !j_str(l->slice, "profile") && !j_str(lines[j].slice, "profile"))
				w = link_weight(l->device, lines[j].device);
			if (j == k)
				printf("%s-1", j > first ? "," : "");
			else
				printf("%s%u", j > first ? "," : "", w);
		}
	}
	putchar('\n');
}

/* "gpu:h100:7,gpu:h100_1g.10gb:7": the lines counted per name and type, in their order. */
static void print_gres_string(const struct gres_line *lines, size_t n)
{
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		size_t count = 0;
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = streq(lines[j].name, lines[i].name) &&
			       streq(lines[j].type, lines[i].type);
		if (seen)
			continue;
		for (size_t j = i; j < n; j++)
			count += streq(lines[j].name, lines[i].name) &&
				 streq(lines[j].type, lines[i].type);
		printf("%s%s:%s:%zu", any ? "," : "", lines[i].name, lines[i].type, count);
		any = true;
	}
	if (!any)
		fputs("(none)", stdout);
}

static void print_gres_types(const struct gres_line *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (i == 0 || !streq(lines[i - 1].name, lines[i].name))
			printf("%s%s", i ? "," : "", lines[i].name);
	if (!n)
		fputs("(none)", stdout);
}

/* What xpud's slices say left out, as a comment: "# ID (RESOURCE): left out, WHY" */
static void print_left_out(const json_t *slice, const char *why)
{
	fputs("# ", stdout);
	put_sanitized(j_str(slice, "id") ?: "?", stdout);
	fputs(" (", stdout);
	put_sanitized(j_str(slice, "resource") ?: "?", stdout);
	printf("): left out, %s\n", why);
}

static int export_slurm(struct ctl *ctl)
{
	_cleanup_json_ json_t *devdoc = NULL, *slicedoc = NULL, *by_id = NULL;
	_cleanup_free_ char *prefix = NULL;
	const json_t *devices, *slices, *s;
	struct gres_line *lines = NULL;
	char host[256] = "", *dot;
	size_t n = 0, i;
	int r;

	if (ctl->n_fit_options || ctl->n_placement_options) {
		fprintf(stderr, "xpuctl: the fit options apply to 'export json' only\n");
		return CTL_EXIT_USAGE;
	}
	if (ctl->dev_prefix) {
		prefix = strdup(ctl->dev_prefix);
		if (!prefix)
			return oom();
		while (strlen(prefix) > 1 && prefix[strlen(prefix) - 1] == '/')
			prefix[strlen(prefix) - 1] = '\0';
		if (!path_listable(prefix)) {
			fprintf(stderr, "xpuctl: --dev-prefix needs an absolute path without ',', "
					"'#', '[', ']' or blanks\n");
			return CTL_EXIT_USAGE;
		}
	}

	r = fetch_list(ctl, "/v1/devices", "devices", &devdoc, &devices);
	if (r != CTL_EXIT_OK)
		return r;
	r = fetch_list(ctl, "/v1/slices", "slices", &slicedoc, &slices);
	if (r != CTL_EXIT_OK)
		return r;
	by_id = index_devices(devices);
	if (!by_id)
		return oom();

	lines = calloc(json_array_size(slices) ?: 1, sizeof(*lines));
	if (!lines)
		return oom();
	json_array_foreach(slices, i, s) {
		const json_t *d = json_object_get(by_id, j_str(s, "device_id") ?: "");
		struct gres_line *l = &lines[n];

		if (!d || json_is_true(json_object_get(s, "shared")))
			continue;
		l->slice = s;
		l->device = d;
		l->order = i;
		l->name = gres_name(j_str(d, "kind"));
		type_from_model(j_str(d, "model"), j_str(d, "vendor"), j_str(d, "kind"), l->type,
				sizeof(l->type));
		if (j_str(s, "profile")) {
			type_append(l->type, sizeof(l->type), "_", 1);
			type_append(l->type, sizeof(l->type), j_str(s, "profile"),
				    strlen(j_str(s, "profile")));
		}
		cores_from_cpu_list(j_str(d, "cpu_list"), l->cores, sizeof(l->cores));
		if (slice_files(s, prefix, l) < 0) {
			gres_lines_free(lines, n + 1);
			return oom();
		}
		if (l->n_files == 0) {
			free(l->files);
			*l = (struct gres_line){};
			continue;
		}
		n++;
	}
	qsort(lines, n, sizeof(*lines), gres_line_cmp);

	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	dot = strchr(host, '.');
	if (dot)
		*dot = '\0';

	printf("# gres.conf for %s: the slices xpud offers now (xpuctl export slurm)\n", host);
	fputs("# slurm.conf: GresTypes=", stdout);
	print_gres_types(lines, n);
	fputs("\n# slurm.conf: NodeName=", stdout);
	put_sanitized(host, stdout);
	fputs(" Gres=", stdout);
	print_gres_string(lines, n);
	putchar('\n');
	for (i = 0; i < n; i++)
		print_gres_line(lines, n, i);
	json_array_foreach(slices, i, s) {
		const json_t *d = json_object_get(by_id, j_str(s, "device_id") ?: "");
		bool listed = false;

		for (size_t k = 0; k < n && !listed; k++)
			listed = lines[k].slice == s;
		if (listed)
			continue;
		print_left_out(s, !d ? "its device is not in the inventory"
			       : json_is_true(json_object_get(s, "shared"))
				       ? "time-shared slices are not exported"
				       : "no device node of its own");
	}
	gres_lines_free(lines, n);
	return CTL_EXIT_OK;
}

/* Moves the member @key of @from to @to as @as. */
static int move_member(json_t *to, const char *as, json_t *from, const char *key)
{
	json_t *v = json_object_get(from, key);

	if (!v)
		return -EBADMSG;
	return json_object_set(to, as, v);
}

static int export_json(struct ctl *ctl)
{
	_cleanup_json_ json_t *version = NULL, *devdoc = NULL, *slicedoc = NULL, *capdoc = NULL,
			      *shape = NULL, *fit = NULL, *doc = NULL, *fitdoc = NULL;
	const json_t *list;
	struct timespec ts;
	int r;

	if (ctl->dev_prefix) {
		fprintf(stderr, "xpuctl: --dev-prefix applies to 'export slurm' only\n");
		return CTL_EXIT_USAGE;
	}
	r = fit_body(ctl, &shape);
	if (r != CTL_EXIT_OK)
		return r;
	r = ctl_call(ctl, "GET", "/v1/version", &version);
	if (r == CTL_EXIT_OK)
		r = fetch_list(ctl, "/v1/devices", "devices", &devdoc, &list);
	if (r == CTL_EXIT_OK)
		r = fetch_list(ctl, "/v1/slices", "slices", &slicedoc, &list);
	if (r == CTL_EXIT_OK)
		r = fetch_list(ctl, "/v1/capacity", "resources", &capdoc, &list);
	if (r == CTL_EXIT_OK)
		r = ctl_call_body(ctl, "POST", "/v1/fit", shape, &fit);
	if (r != CTL_EXIT_OK)
		return r;

	clock_gettime(CLOCK_REALTIME, &ts);
	doc = json_pack("{s:i, s:I, s:{s:o?, s:o?}}", "schema_version", EXPORT_SCHEMA_VERSION,
			"generated_usec",
			(json_int_t)ts.tv_sec * 1000000 + (json_int_t)(ts.tv_nsec / 1000), "xpud",
			"version", json_incref(json_object_get(version, "version")), "api",
			json_incref(json_object_get(version, "api")));
	fitdoc = json_pack("{s:O}", "shape", shape);
	if (!doc || !fitdoc)
		return oom();
	const struct {
		json_t *to;
		const char *as;
		json_t *from;
		const char *key;
	} members[] = {
		{ doc, "devices", devdoc, "devices" },	{ doc, "slices", slicedoc, "slices" },
		{ doc, "capacity", capdoc, "resources" }, { fitdoc, "fits", fit, "fits" },
		{ fitdoc, "resource", fit, "resource" },  { fitdoc, "slices", fit, "slices" },
	};
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(members); i++)
		r = move_member(members[i].to, members[i].as, members[i].from, members[i].key);
	if (r >= 0)
		r = json_object_set(doc, "fit", fitdoc);
	if (r == -EBADMSG)
		return malformed(ctl, "the fit answer lacks \"fits\", \"resource\" or \"slices\"");
	if (r < 0)
		return oom();
	return print_json(doc);
}

int verb_export(struct ctl *ctl, char **args)
{
	if (streq(args[0], "slurm"))
		return export_slurm(ctl);
	if (streq(args[0], "json"))
		return export_json(ctl);
	fprintf(stderr, "xpuctl: unknown export format '%s' (slurm, json)\n", args[0]);
	return CTL_EXIT_USAGE;
}
