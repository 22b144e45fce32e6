// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * `xpuctl export slurm` read by Slurm itself: Debian's slurmd parses the generated gres.conf with
 * a minimal slurm.conf carrying the exported Gres= (`slurmd -G` prints each GRES it understood),
 * and what it understood is compared with xpud's inventory: names, types, counts, device files,
 * cores and links, on the HGX H100 (whole GPUs and MIG instances), MI300X (SPX and CPX
 * partitions) and mixed nodes. Skips (77) when slurmd is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/macro.h"
#include "testutil.h"

#define SLURMD "/usr/sbin/slurmd"

struct node_shape {
	const char *fixture;
	bool nvml;		     /* with the fake NVML: MIG instances and NVLink topology */
	unsigned cpus, sockets, cores_per_socket, threads;
	const char *cores[2];	     /* Cores= of NUMA node 0 and 1 */
	const char *types;	     /* the Type= of every GRES, in order, space-separated */
	unsigned link;		     /* Links= between two whole devices; 0: no Links= */
	size_t left_out;	     /* slices with no device node of their own */
};

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void mkdir_parents(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
}

/*
 * Makes each file of a File=/MultipleFiles= list: a character device (/dev/null's numbers) where
 * mknod is allowed, as Slurm wants, else a regular file. Whether they are character devices.
 */
static bool make_files(char *list)
{
	bool chr = true;

	for (char *f = strtok(list, ","); f; f = strtok(NULL, ",")) {
		mkdir_parents(f);
		if (access(f, F_OK) == 0)
			continue;
		if (mknod(f, S_IFCHR | 0600, makedev(1, 3)) < 0) {
			chr = false;
			write_file(f, "");
		}
	}
	return chr;
}

/* The value of "KEY=value" in @line, up to the next blank (malloc'd), or NULL. */
static char *field(const char *line, const char *key)
{
	_cleanup_free_ char *k = xasprintf(" %s=", key);
	const char *p = strstr(line, k);

	if (!p && strncmp(line, k + 1, strlen(k) - 1) == 0)
		p = line - 1;
	if (!p)
		return NULL;
	p += strlen(k);
	return strndup(p, strcspn(p, " \n"));
}

/* The slice of @slices whose device nodes hold every file of @files (with @prefix for /dev). */
static json_t *slice_of_files(json_t *slices, const char *files, const char *prefix)
{
	_cleanup_free_ char *copy = strdup(files);
	json_t *found = NULL, *s;
	size_t i;

	assert_non_null(copy);
	json_array_foreach(slices, i, s) {
		_cleanup_free_ char *c = strdup(copy);
		bool all = true;

		for (char *f = strtok(c, ","); f && all; f = strtok(NULL, ",")) {
			_cleanup_free_ char *node = NULL;

			assert_true(strncmp(f, prefix, strlen(prefix)) == 0);
			node = xasprintf("/dev%s", f + strlen(prefix));
			all = test_has_node(s, node);
		}
		if (all) {
			assert_null(found); /* one slice only */
			found = s;
		}
	}
	return found;
}

static void check_node(const struct node_shape *shape)
{
	char *root = test_fixture_new(shape->fixture);
	struct test_xpud *x = shape->nvml ? test_xpud_start_nvml(root, NULL, NULL)
					  : test_xpud_start(root, NULL);
	_cleanup_free_ char *dir = xasprintf("%s/slurm", x->root), *prefix = NULL, *out = NULL,
			    *text = NULL, *conf = NULL, *cmd = NULL, *path = NULL,
			    *types = strdup(shape->types);
	json_t *slicedoc = test_get(x, "slices", NULL), *d = NULL;
	json_t *slices = json_object_get(slicedoc, "slices");
	char host[256] = "", line[8192], *gres = NULL, *gres_types = NULL, *type_next = types;
	char *save = NULL;
	size_t n_lines = 0, n_parsed = 0, n_comments = 0, n_counted = 0;
	char *seen_names[128], *seen_types[128];
	json_t *matched = json_object(), *file_owner = json_object();
	bool chr = true;
	FILE *p;

	assert_int_equal(mkdir(dir, 0755), 0);
	prefix = xasprintf("%s/dev", dir);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "export", "slurm", "--dev-prefix", prefix,
						       NULL },
				     &out),
			 0);
	path = xasprintf("%s/gres.conf", dir);
	write_file(path, out);
	text = strdup(out);
	assert_non_null(text);

	/* the slurm.conf lines it proposes, and the device files to make */
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "# slurm.conf: GresTypes=", 24) == 0)
			gres_types = l + 24;
		else if (strncmp(l, "# slurm.conf: NodeName=", 23) == 0)
			gres = strstr(l, " Gres=");
		else if (strstr(l, "left out, no device node of its own"))
			n_comments++;
		if (strncmp(l, "Name=", 5) != 0)
			continue;
		n_lines++;
		_cleanup_free_ char *files = field(l, "File") ?: field(l, "MultipleFiles");

		assert_non_null(files);
		chr &= make_files(files);
	}
	assert_non_null(gres_types);
	assert_non_null(gres);
	assert_int_equal(n_comments, shape->left_out);

	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	host[strcspn(host, ".")] = '\0';
	conf = xasprintf("ClusterName=xputest\nSlurmctldHost=localhost\n"
			 "NodeName=%s CPUs=%u Boards=1 SocketsPerBoard=%u CoresPerSocket=%u "
			 "ThreadsPerCore=%u RealMemory=1000%s\n"
			 "SlurmdParameters=config_overrides\nGresTypes=%s\n"
			 "SlurmdSpoolDir=%s/spool\nProctrackType=proctrack/pgid\n"
			 "TaskPlugin=task/none\n",
			 host, shape->cpus, shape->sockets, shape->cores_per_socket,
			 shape->threads, gres, gres_types, dir);
	free(path);
	path = xasprintf("%s/slurm.conf", dir);
	write_file(path, conf);

	cmd = xasprintf("cd %s && timeout 60 " SLURMD " -G -f %s/slurm.conf 2>&1", dir, dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		_cleanup_free_ char *name = NULL, *type = NULL, *count = NULL, *files = NULL,
				    *cores = NULL, *links = NULL;
		const char *want_type, *dev_id;
		json_t *s;

		/* without mknod, Slurm names each regular file; anything else is a defect */
		if (!chr && strstr(line, "is not a valid character or block device"))
			continue;
		assert_non_null(strstr(line, "Gres Name="));
		name = field(strstr(line, "Gres "), "Name");
		type = field(line, "Type");
		count = field(line, "Count");
		files = field(line, "File");
		cores = field(line, "Cores");
		links = field(line, "Links");
		assert_non_null(type);
		assert_non_null(files);
		assert_string_equal(count, "1");

		/* the slice those files are, once, and its device */
		s = slice_of_files(slices, files, prefix);
		assert_non_null(s);
		assert_null(json_object_get(matched, test_jstr(s, "id")));
		json_object_set_new(matched, test_jstr(s, "id"), json_true());
		dev_id = test_jstr(s, "device_id");
		json_decref(d);
		d = test_get(x, "devices", dev_id);

		/* a file is one device's: never also another device's GRES (a driver's control
		 * node would be handed to whichever job holds that GRES) */
		_cleanup_free_ char *fc = strdup(files);
		for (char *f = strtok(fc, ","); f; f = strtok(NULL, ",")) {
			const char *owner = json_string_value(json_object_get(file_owner, f));

			if (owner)
				assert_string_equal(owner, dev_id);
			json_object_set_new(file_owner, f, json_string(dev_id));
		}

		assert_string_equal(name, strcmp(test_jstr(d, "kind"), "gpu") == 0
						  ? "gpu"
						  : test_jstr(d, "kind"));
		want_type = strsep(&type_next, " ");
		assert_non_null(want_type);
		assert_string_equal(type, want_type);
		assert_string_equal(cores,
				    shape->cores[json_integer_value(json_object_get(d, "numa_node"))]);
		if (shape->link) {
			/* -1 at its own place, the fabric to every other whole device */
			char row[512] = "";
			json_t *o;
			size_t i;

			assert_non_null(links);
			json_array_foreach(slices, i, o) {
				size_t len = strlen(row);
				unsigned w = 0;

				if (json_is_true(json_object_get(o, "shared")) ||
				    json_array_size(json_object_get(o, "device_nodes")) == 0)
					continue;
				if (o == s)
					snprintf(row + len, sizeof(row) - len, "%s-1", len ? "," : "");
				else {
					if (!test_jstr(o, "profile") && !test_jstr(s, "profile"))
						w = shape->link;
					snprintf(row + len, sizeof(row) - len, "%s%u",
						 len ? "," : "", w);
				}
			}
			assert_string_equal(links, row);
		}
		assert_true(n_parsed < ELEMENTSOF(seen_names));
		seen_names[n_parsed] = TAKE_PTR(name);
		seen_types[n_parsed] = TAKE_PTR(type);
		n_parsed++;
	}
	assert_int_equal(pclose(p), 0);

	/* every slice with a device node of its own, and nothing else */
	assert_int_equal(n_parsed, n_lines);
	assert_int_equal(n_parsed + shape->left_out, json_array_size(slices));
	assert_null(strsep(&type_next, " "));

	/* the Gres= proposed for slurm.conf counts the records Slurm read, per name and type */
	_cleanup_free_ char *g = strdup(gres + strlen(" Gres="));
	for (char *e = strtok_r(g, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		char *name = e, *type = strchr(e, ':'), *count = type ? strchr(type + 1, ':') : NULL;
		size_t n = 0;

		assert_non_null(count);
		*type++ = '\0';
		*count++ = '\0';
		for (size_t i = 0; i < n_parsed; i++)
			n += strcmp(seen_names[i], name) == 0 && strcmp(seen_types[i], type) == 0;
		assert_int_equal(n, strtoul(count, NULL, 10));
		n_counted += n;
	}
	assert_int_equal(n_counted, n_parsed);
	for (size_t i = 0; i < n_parsed; i++) {
		free(seen_names[i]);
		free(seen_types[i]);
	}

	json_decref(matched);
	json_decref(file_owner);
	json_decref(d);
	json_decref(slicedoc);
	test_xpud_free(x);
}

static void test_hgx(void **state)
{
	check_node(&(struct node_shape){
		.fixture = "hgx-h100",
		.nvml = true,
		.cpus = 224, .sockets = 2, .cores_per_socket = 56, .threads = 2,
		.cores = { "0-55", "56-111" },
		.types = "h100 h100 h100 h100 h100 h100 h100 h100_1g.10gb h100_1g.10gb "
			 "h100_1g.10gb h100_1g.10gb h100_1g.10gb h100_1g.10gb h100_1g.10gb",
		.link = 18,
	});
}

static void test_mi300x(void **state)
{
	check_node(&(struct node_shape){
		.fixture = "mi300x",
		.cpus = 384, .sockets = 2, .cores_per_socket = 96, .threads = 2,
		.cores = { "0-95", "96-191" },
		.types = "mi300x mi300x mi300x mi300x mi300x mi300x mi300x mi300x",
		.link = 1,
	});
}

static void test_mi300x_cpx(void **state)
{
	static char types[64 * 11 + 1];

	for (size_t i = 0; i < 64; i++)
		strcat(types, i ? " mi300x_cpx" : "mi300x_cpx");
	check_node(&(struct node_shape){
		.fixture = "mi300x-cpx",
		.cpus = 384, .sockets = 2, .cores_per_socket = 96, .threads = 2,
		.cores = { "0-95", "96-191" },
		.types = types,
	});
}

static void test_mixed(void **state)
{
	check_node(&(struct node_shape){
		.fixture = "mixed",
		.cpus = 32, .sockets = 1, .cores_per_socket = 32, .threads = 1,
		.cores = { "0-31" },
		.types = "data_center_gpu_flex_170 npu_meteor_lake gaudi2 coral_edge_tpu u250",
		.left_out = 2,
	});
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hgx),
		cmocka_unit_test(test_mi300x),
		cmocka_unit_test(test_mi300x_cpx),
		cmocka_unit_test(test_mixed),
	};

	if (access(SLURMD, X_OK) < 0) {
		printf("skip: %s is not installed (Debian's slurmd)\n", SLURMD);
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
