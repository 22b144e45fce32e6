// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * xpud's benchmarks. Every number is measured next to a baseline in the same run, so the
 * ratios hold on a noisy machine even when the absolute values drift:
 *
 *   api       GET /v1/devices on the HGX fixture vs a bare Unix-socket server that answers
 *             a request with a payload of the same size (median and p99 of N requests).
 *   enumerate the PCI backend over 1,000 simulated PCI functions (600 accelerators, 400 NICs,
 *             on tmpfs like sysfs) vs a bare loop that only reads vendor, device and class;
 *             and the same node with 50 of its GPUs MI300X in CPX mode (400 compute
 *             partitions, the DRM backend and the KFD topology) vs the node without them.
 *   uevent    a uevent for a hot-plugged GPU until its device-added event on /v1/events.
 *   rss       xpud's resident memory with the HGX fixture loaded, after the API was used.
 *   ready     process start to the first answer on the HGX node, with the fake NVML (per-GPU
 *             query threads, topology, MIG) next to the sysfs-only start, same run.
 *   repartition  grants of other GPUs while one GPU's MIG layout is made (the fake NVML takes
 *             a second per instance created) next to the same grants with nothing being made.
 *   fit       POST /v1/fit on a 16-GPU node (the HGX fixture twice over) vs GET /v1/version on
 *             the same connection; and, as root, root's GET /v1/version while 16 unprivileged
 *             clients ask for fits as fast as they can, next to the same with nobody else.
 *   kmsg      an XID 79 line written into the kernel log (the fixture's dev/kmsg) until
 *             /v1/events shows the GPU's health-changed, next to the same XID as an NVML event
 *             (the fake's event FIFO, read by the NVML event thread).
 *
 * Usage: bench-xpud XPUD_BIN [ITERATIONS [FAKE_NVML]]. Prints a Markdown table on stdout.
 */
#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backends/registry.h"
#include "shared/fileio.h"
#include "shared/host.h"
#include "shared/log.h"
#include "sim/fixture.h"

/* What round_trip() asks (the metrics bench asks for /metrics instead). */
static const char *request = "GET /v1/devices HTTP/1.1\r\nHost: xpud\r\n\r\n";

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)((double)(n - 1) * p)];
}

/*
 * The client runs on the first CPU, the servers (xpud and the baseline alike) on the last one,
 * so both pay the same cross-CPU wakeups and neither competes with the client.
 */
static void pin(bool server)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(server && n > 1 ? (int)n - 1 : 0, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

static void die(const char *what)
{
	fprintf(stderr, "bench-xpud: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sun.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		die("connect");
	return fd;
}

/* Reads one HTTP response with a Content-Length body. Returns its total size. */
static size_t read_response(int fd, char *buf, size_t cap)
{
	size_t len = 0, total = 0;

	for (;;) {
		ssize_t k = read(fd, buf + len, cap - len - 1);
		char *end, *cl;

		if (k <= 0)
			die("read response");
		len += (size_t)k;
		buf[len] = '\0';
		if (!total && (end = strstr(buf, "\r\n\r\n"))) {
			cl = strcasestr(buf, "Content-Length:");
			if (!cl)
				die("no Content-Length");
			total = (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10);
		}
		if (total && len >= total)
			return total;
	}
}

static double round_trip(int fd, char *buf, size_t cap, size_t *ret_size)
{
	double start = now_us();

	if (write(fd, request, strlen(request)) != (ssize_t)strlen(request))
		die("write");
	*ret_size = read_response(fd, buf, cap);
	return now_us() - start;
}

/* One request with a body on a keep-alive connection; the response lands in @buf. */
static double exchange(int fd, const char *method, const char *path, const char *body,
		       char *buf, size_t cap)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: xpud\r\nContent-Length: %zu\r\n\r\n%s", method,
			 path, body ? strlen(body) : 0, body ?: "");
	double start = now_us();

	if (write(fd, req, (size_t)n) != n)
		die("write");
	(void)read_response(fd, buf, cap);
	return now_us() - start;
}

static long rss_kib(pid_t pid);

/*
 * Allocation round trips: POST /v1/allocations for one GPU, then DELETE it, @n times on one
 * connection. Each is acknowledged only after the state file was replaced and fsync'd.
 * Medians in ret_grant/ret_release; RSS before and after in ret_rss.
 */
static void bench_allocations(const char *sock, pid_t xpud, int n, double *ret_grant,
			      double *ret_release, long ret_rss[2])
{
	static char buf[1 << 16];
	double *g = calloc((size_t)n, sizeof(double)), *r = calloc((size_t)n, sizeof(double));
	int fd = connect_to(sock);

	for (int i = -n / 10; i < n; i++) {
		char path[128], *id;
		double tg, tr;

		if (i == 0)
			ret_rss[0] = rss_kib(xpud);
		tg = exchange(fd, "POST", "/v1/allocations",
			      "{\"resource\": \"nvidia.com/gpu\", \"count\": 1}", buf, sizeof(buf));
		id = strstr(buf, "\"id\":\"");
		if (!strstr(buf, " 201 ") || !id)
			die("grant");
		snprintf(path, sizeof(path), "/v1/allocations/%.18s", id + 6);
		tr = exchange(fd, "DELETE", path, NULL, buf, sizeof(buf));
		if (!strstr(buf, " 200 "))
			die("release");
		if (i >= 0) {
			g[i] = tg;
			r[i] = tr;
		}
	}
	ret_rss[1] = rss_kib(xpud);
	close(fd);
	*ret_grant = percentile(g, (size_t)n, 0.5);
	*ret_release = percentile(r, (size_t)n, 0.5);
	free(g);
	free(r);
}

/*
 * Median and p99 latency of @n keep-alive round trips to each of two servers, interleaved
 * request by request (alternating which goes first) so that both see the same machine.
 */
static void measure_pair(const char *a_path, const char *b_path, int n, double ret_median[2],
			 double ret_p99[2], size_t ret_size[2])
{
	static char buf[4 << 20];
	double *t[2] = { calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double)) };
	int fd[2] = { connect_to(a_path), connect_to(b_path) };

	for (int i = -n / 10; i < n; i++) { /* the first tenth warms up */
		for (int k = 0; k < 2; k++) {
			int which = (i & 1) ^ k;
			double dt = round_trip(fd[which], buf, sizeof(buf), &ret_size[which]);

			if (i >= 0)
				t[which][i] = dt;
		}
	}
	for (int k = 0; k < 2; k++) {
		close(fd[k]);
		ret_median[k] = percentile(t[k], (size_t)n, 0.5);
		ret_p99[k] = percentile(t[k], (size_t)n, 0.99);
		free(t[k]);
	}
}

/*
 * The baseline server: one process, blocking, no parsing beyond finding the end of the
 * headers, answering every request with a canned response of @size bytes.
 */
static pid_t bare_server(const char *path, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int lfd;
	pid_t pid;

	strcpy(sun.sun_path, path);
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 16) < 0)
		die("bare server");
	pid = fork();
	if (pid != 0) {
		close(lfd);
		return pid;
	}
	pin(true);
	static const char fmt[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				  "Content-Length: %zu\r\n\r\n";
	char *resp = malloc(size + 1), req[4096];
	size_t body = size;
	int hl = 0;

	/* Same total size as xpud's answer: our header plus a padding body. */
	for (int k = 0; k < 3; k++) {
		hl = snprintf(NULL, 0, fmt, body);
		body = size - (size_t)hl;
	}
	snprintf(resp, size + 1, fmt, body);
	memset(resp + hl, ' ', body);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			_exit(0);
		for (;;) {
			size_t len = 0;

			while (!memmem(req, len, "\r\n\r\n", 4)) {
				ssize_t k = read(fd, req + len, sizeof(req) - len);

				if (k <= 0)
					goto next;
				len += (size_t)k;
			}
			if (write(fd, resp, size) != (ssize_t)size)
				break;
		}
next:
		close(fd);
	}
}

/* @state_dir NULL: the default, below the root. */
static pid_t start_xpud_state(const char *bin, const char *root, const char *sock,
			      const char *state_dir)
{
	pid_t pid = fork();

	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		pin(true);
		dup2(devnull, STDERR_FILENO);
		if (state_dir)
			execl(bin, bin, "--root", root, "--socket", sock, "--log-level", "warning",
			      "--state-dir", state_dir, (char *)NULL);
		else
			execl(bin, bin, "--root", root, "--socket", sock, "--log-level", "warning",
			      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		strcpy(sun.sun_path, sock);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			/* connected means bound; give the loop its first turn */
			usleep(50 * 1000);
			return pid;
		}
		close(fd);
		usleep(20 * 1000);
	}
	fprintf(stderr, "bench-xpud: xpud did not start\n");
	exit(1);
}

static pid_t start_xpud(const char *bin, const char *root, const char *sock)
{
	return start_xpud_state(bin, root, sock, NULL);
}

/* Milliseconds from fork to the first successful connect (xpud binds after its first scan). */
static long rss_kib(pid_t pid);

/* @ret_rss: xpud's RSS once it answered and its CUDA probe (if any) had time to finish. */
static double ready_ms(const char *bin, const char *root, const char *sock, const char *nvml,
		      long *ret_rss)
{
	char desc[4096];
	double start = now_us();
	pid_t pid;

	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	unlink(sock);
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		pin(true);
		dup2(devnull, STDERR_FILENO);
		if (nvml) {
			setenv("XPU_NVML_LIBRARY", nvml, 1);
			setenv("XPU_FAKE_NVML", desc, 1);
		}
		execl(bin, bin, "--root", root, "--socket", sock, "--log-level", "warning",
		      (char *)NULL);
		_exit(127);
	}
	for (;;) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		double ms;

		strcpy(sun.sun_path, sock);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			static char buf[1 << 20];
			size_t size;

			/* connected means bound; answered means the first inventory is done */
			(void)round_trip(fd, buf, sizeof(buf), &size);
			ms = (now_us() - start) / 1000.0;
			close(fd);
			if (ret_rss) {
				usleep(600 * 1000);
				*ret_rss = rss_kib(pid);
			}
			kill(pid, SIGTERM);
			waitpid(pid, NULL, 0);
			return ms;
		}
		close(fd);
		if (now_us() - start > 20e6)
			die("xpud did not come up");
		usleep(500);
	}
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static long rss_kib(pid_t pid)
{
	char path[64], *text = NULL, *p;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_attr_at(AT_FDCWD, path, 1 << 16, &text) < 0)
		return -1;
	p = strstr(text, "VmRSS:");
	if (p)
		kib = strtol(p + 6, NULL, 10);
	free(text);
	return kib;
}

/*
 * A large node of @n PCI functions: a fifth NVIDIA GPUs (the driver's minors stop at 254),
 * two fifths Gaudi accelerators with accel nodes, two fifths NICs that must be skipped.
 */
static char *many_functions_json(int n)
{
	size_t cap = (size_t)n * 320 + 1024, len = 0;
	char *s = malloc(cap);
	int gpus = 0, accels = 0;

	len += (size_t)snprintf(s + len, cap - len,
				"{\"name\":\"many\",\"defaults\":{\"numa_node\":0,"
				"\"local_cpulist\":\"0-15\"},\"dev\":[\"nvidiactl\"],\"pci\":[");
	for (int i = 0; i < n; i++) {
		char addr[16];

		snprintf(addr, sizeof(addr), "%04x:%02x:00.0", 1 + i / 256, i % 256);
		if (i % 5 == 0 && gpus < 255)
			len += (size_t)snprintf(
				s + len, cap - len,
				"%s{\"address\":\"%s\",\"vendor\":\"0x10de\",\"device\":\"0x2330\","
				"\"class\":\"0x030200\",\"driver\":\"nvidia\",\"nvidia\":{\"minor\":%d,"
				"\"model\":\"NVIDIA H100 80GB HBM3\",\"uuid\":\"GPU-%d\"}}",
				i ? "," : "", addr, gpus, gpus), gpus++;
		else if (i % 5 < 3)
			len += (size_t)snprintf(
				s + len, cap - len,
				"%s{\"address\":\"%s\",\"vendor\":\"0x1da3\",\"device\":\"0x1020\","
				"\"class\":\"0x120000\",\"driver\":\"habanalabs\",\"class_devices\":"
				"[{\"class\":\"accel\",\"name\":\"accel%d\",\"devname\":\"accel/"
				"accel%d\",\"major\":261,\"minor\":%d}]}",
				i ? "," : "", addr, accels, accels, accels), accels++;
		else
			len += (size_t)snprintf(s + len, cap - len,
						"%s{\"address\":\"%s\",\"vendor\":\"0x15b3\","
						"\"device\":\"0x1021\",\"class\":\"0x020000\","
						"\"driver\":\"mlx5_core\"}",
						i ? "," : "", addr);
	}
	snprintf(s + len, cap - len, "]}");
	return s;
}

/* The floor: open and read vendor, device and class of every function, nothing else. */
static double bare_walk_ms(const char *root)
{
	char path[4096];
	double start = now_us();
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices", root);
	d = opendir(path);
	if (!d)
		die("opendir");
	while ((de = readdir(d))) {
		static const char *const attrs[] = { "vendor", "device", "class" };

		if (de->d_name[0] == '.')
			continue;
		for (size_t i = 0; i < 3; i++) {
			char *v = NULL;

			snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/%s", root,
				 de->d_name, attrs[i]);
			if (read_attr_at(AT_FDCWD, path, 0, &v) == 0)
				free(v);
		}
	}
	closedir(d);
	return (now_us() - start) / 1000.0;
}

/* A node's DRM devices: card and render nodes numbered as the kernel gives minors (the legacy
 * ranges, 0-63 and 128-191, then both from 192 up in turn). */
static json_t *drm_nodes(int j)
{
	int card = j < 64 ? j : 192 + 2 * (j - 64), render = j < 64 ? 128 + j : card + 1;
	char cn[32], cd[40], rn[32], rd[40];

	snprintf(cn, sizeof(cn), "card%d", card);
	snprintf(cd, sizeof(cd), "dri/%s", cn);
	snprintf(rn, sizeof(rn), "renderD%d", render);
	snprintf(rd, sizeof(rd), "dri/%s", rn);
	return json_pack("[{s:s, s:s, s:s, s:i, s:i, s:s}, {s:s, s:s, s:s, s:i, s:i, s:s}]",
			 "class", "drm", "name", cn, "devname", cd, "major", 226, "minor", card,
			 "devtype", "drm_minor", "class", "drm", "name", rn, "devname", rd, "major",
			 226, "minor", render, "devtype", "drm_minor");
}

/*
 * The same node with @amd of its NVIDIA GPUs (every fourth) made AMD Instinct MI300X GPUs in
 * CPX/NPS4 mode, as tests/fixtures/gen/amd-nodes.py writes the MI300X CPX node: 8 compute
 * partitions each, each with its KFD topology node (location_id, domain, render minor, SIMDs,
 * memory, hive) and its card and render nodes (partition 0's on the PCI function, the others'
 * on amdgpu_xcp_N platform devices); hives of 8 GPUs, RAS counters.
 */
static char *amd_partitions_json(int n, int amd)
{
	const uint64_t vram = 206158430208ULL; /* 192 GiB */
	char *base = many_functions_json(n), *s;
	json_t *doc = json_loads(base, 0, NULL), *raw = json_object(), *platform = json_array(), *f;
	int g = 0, gpu = 0, j = 0, node = 1;
	size_t i;

	if (!doc || !raw || !platform)
		die("json");
	json_array_append_new(json_object_get(doc, "dev"), json_string("kfd"));
	json_object_set_new(raw, "sys/class/kfd/kfd/topology/nodes/0/properties",
			    json_string("cpu_cores_count 96\nsimd_count 0\nmem_banks_count 1\n"));
	json_array_foreach(json_object_get(doc, "pci"), i, f) {
		const char *addr = json_string_value(json_object_get(f, "address"));
		char unique[24], hive[32], used[24], vram_s[24], props[768], key[64];
		uint64_t hive_id = 0x5c2f6b1a9d3e4000ULL + (unsigned)g / 8;
		unsigned domain, bus;
		json_t *e;

		if (!streq_ptr(json_string_value(json_object_get(f, "vendor")), "0x10de") ||
		    gpu++ % 4 || g == amd)
			continue;
		if (sscanf(addr, "%x:%x", &domain, &bus) != 2)
			die("address");
		snprintf(unique, sizeof(unique), "%016llx",
			 (unsigned long long)(0x4a8e5f0c2d1e3b00ULL + (unsigned)g));
		snprintf(hive, sizeof(hive), "%llu\n", (unsigned long long)hive_id);
		snprintf(used, sizeof(used), "%llu", (unsigned long long)(3 + g % 8) << 30);
		snprintf(vram_s, sizeof(vram_s), "%llu", (unsigned long long)vram);
		for (int k = 0; k < 8; k++, j++, node++) {
			int render = j < 64 ? 128 + j : 193 + 2 * (j - 64);

			snprintf(key, sizeof(key), "sys/class/kfd/kfd/topology/nodes/%d/properties",
				 node);
			snprintf(props, sizeof(props),
				 "cpu_cores_count 0\nsimd_count 152\nmem_banks_count 1\n"
				 "gfx_target_version 90402\nsimd_per_cu 4\narray_count 4\n"
				 "cu_per_simd_array 10\nvendor_id 4098\ndevice_id 29857\n"
				 "location_id %u\ndomain %u\ndrm_render_minor %d\nhive_id %llu\n"
				 "unique_id %llu\nnum_xcc 1\nlocal_mem_size %llu\n",
				 bus << 8 | (unsigned)k, domain, render,
				 (unsigned long long)hive_id,
				 (unsigned long long)(0x4a8e5f0c2d1e3b00ULL + (unsigned)g),
				 (unsigned long long)vram / 4);
			json_object_set_new(raw, key, json_string(props));
			if (k == 0)
				continue;
			snprintf(key, sizeof(key), "amdgpu_xcp_%d", g * 7 + k - 1);
			json_array_append_new(platform, json_pack("{s:s, s:o}", "name", key,
								  "class_devices", drm_nodes(j)));
		}
		e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, "
			      "s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}, "
			      "s:{s:s, s:s, s:s}}",
			      "address", addr, "vendor", "0x1002", "device", "0x74a1",
			      "subsystem_vendor", "0x1002", "subsystem_device", "0x74a1", "class",
			      "0x120000", "revision", "0x00", "driver", "amdgpu", "class_devices",
			      drm_nodes(j - 8), "attrs", "current_compute_partition", "CPX",
			      "current_memory_partition", "NPS4", "available_compute_partition",
			      "SPX, DPX, QPX, CPX", "available_memory_partition", "NPS1, NPS4",
			      "unique_id", unique, "product_name", "AMD Instinct MI300X",
			      "mem_info_vram_total", vram_s, "mem_info_vis_vram_total", vram_s,
			      "mem_info_vram_used", used, "raw_files",
			      "xgmi_hive_info/xgmi_hive_id", hive, "ras/umc_err_count",
			      "ue: 0\nce: 0\n", "ras/gfx_err_count", "ue: 0\nce: 1\n");
		if (!e || json_array_set_new(json_object_get(doc, "pci"), i, e) < 0)
			die("json");
		g++;
	}
	json_object_set_new(doc, "raw_files", raw);
	json_object_set_new(doc, "platform", platform);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	free(base);
	return s;
}

/* One node to enumerate: its tree and registry, and each run's times. */
struct enum_node {
	char *dir;
	struct xpu_host *host;
	struct registry *reg;
	double t[32], b[32];
	size_t devices, partitions;
};

static void enum_node_open(struct enum_node *e, char *json)
{
	char *err = NULL;

	*e = (struct enum_node){};
	if (fixture_build_temp(json, &e->dir, &err) < 0) {
		fprintf(stderr, "bench-xpud: fixture: %s\n", err ?: "?");
		exit(1);
	}
	if (host_open(e->dir, &e->host) < 0 ||
	    registry_new(e->host, NULL, registry_builtin_ops, registry_builtin_n, &e->reg) < 0)
		die("registry");
	free(json);
}

/* Run @i: the registry's enumeration, then the bare walk of the same tree. */
static void enum_node_run(struct enum_node *e, int i)
{
	struct device_list l = {};
	double start = now_us();

	if (registry_enumerate(e->reg, &l) < 0)
		die("enumerate");
	e->t[i] = (now_us() - start) / 1000.0;
	e->devices = l.n;
	e->partitions = 0;
	for (size_t k = 0; k < l.n; k++)
		e->partitions += l.items[k]->n_partitions;
	device_list_clear(&l);
	e->b[i] = bare_walk_ms(e->dir);
}

static void enum_node_close(struct enum_node *e)
{
	registry_free(e->reg);
	host_free(e->host);
	fixture_destroy(e->dir);
	free(e->dir);
}

/* The 1,000-function node, and the same with 50 MI300X GPUs in CPX mode, run by run in turn. */
static void bench_enumerate(int runs)
{
	struct enum_node plain, amd;
	double med, base, amd_med, amd_base;

	/* sysfs lives in memory; so does tmpfs, the closest stand-in for it */
	if (access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	enum_node_open(&plain, many_functions_json(1000));
	enum_node_open(&amd, amd_partitions_json(1000, 50));
	if (runs > 32)
		runs = 32;
	for (int i = 0; i < runs; i++) {
		enum_node_run(&plain, i);
		enum_node_run(&amd, i);
	}
	med = percentile(plain.t, (size_t)runs, 0.5);
	base = percentile(plain.b, (size_t)runs, 0.5);
	amd_med = percentile(amd.t, (size_t)runs, 0.5);
	amd_base = percentile(amd.b, (size_t)runs, 0.5);
	printf("| enumerate 1,000 PCI functions (%zu accelerators) | %.2f ms | bare walk of "
	       "vendor/device/class: %.2f ms | %.1fx | < 50 ms |\n",
	       plain.devices, med, base, med / base);
	printf("| enumerate 1,000 PCI functions, 50 of the GPUs MI300X in CPX (%zu accelerators, "
	       "%zu partitions) | %.2f ms | bare walk of vendor/device/class: %.2f ms | %.1fx | - "
	       "|\n",
	       amd.devices, amd.partitions, amd_med, amd_base, amd_med / amd_base);
	printf("| the same, against the 1,000 functions without them | %.2f ms | %.2f ms | %.2fx "
	       "| <= 2x |\n",
	       amd_med, med, amd_med / med);
	enum_node_close(&plain);
	enum_node_close(&amd);
}

static double uevent_latency_ms(const char *root, const char *sock, int i)
{
	static const char ev_req[] = "GET /v1/events HTTP/1.1\r\nHost: xpud\r\n\r\n";
	char json[1024], addr[16], msg[512], *err = NULL, buf[65536], uev[4096];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = 0;
	double start;
	int fd, ufd, n;

	snprintf(addr, sizeof(addr), "0000:f%x:00.0", i % 16);
	fd = connect_to(sock);
	if (write(fd, ev_req, sizeof(ev_req) - 1) < 0)
		die("write");
	while (!memmem(buf, len, "subscribed", 10)) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - len);

		if (k <= 0)
			die("events");
		len += (size_t)k;
	}
	snprintf(json, sizeof(json),
		 "{\"name\":\"x\",\"pci\":[{\"address\":\"%s\",\"vendor\":\"0x10de\",\"device\":"
		 "\"0x2330\",\"class\":\"0x030200\",\"driver\":\"nvidia\",\"nvidia\":{\"minor\":"
		 "%d,\"model\":\"NVIDIA H100 80GB HBM3\",\"uuid\":\"GPU-1\"}}]}",
		 addr, 100 + i % 16);
	if (fixture_build(json, root, &err) < 0)
		die("fixture");
	n = snprintf(msg, sizeof(msg), "add@/devices/pci0000:f0/%s%cACTION=add%cDEVPATH=/devices/"
				       "pci0000:f0/%s%cSUBSYSTEM=pci",
		     addr, 0, 0, addr, 0);
	snprintf(uev, sizeof(uev), "%s/run/xpud-uevent.sock", root);
	strcpy(sun.sun_path, uev);
	ufd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	start = now_us();
	if (sendto(ufd, msg, (size_t)n + 1, 0, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		die("sendto");
	len = 0;
	while (!memmem(buf, len, "device-added", 12)) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - len);

		if (k <= 0)
			die("events");
		len += (size_t)k;
	}
	double ms = (now_us() - start) / 1000.0;

	close(ufd);
	close(fd);
	fixture_remove_pci(root, addr);
	free(err);
	return ms;
}

/* xpud with the fake NVML (@nvml) and its state on tmpfs (@state_dir). */
static pid_t start_xpud_nvml(const char *bin, const char *root, const char *sock,
			     const char *state_dir, const char *nvml)
{
	char desc[4096];
	pid_t pid;

	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	setenv("XPU_NVML_LIBRARY", nvml, 1);
	setenv("XPU_FAKE_NVML", desc, 1);
	pid = start_xpud_state(bin, root, sock, state_dir);
	unsetenv("XPU_NVML_LIBRARY");
	unsetenv("XPU_FAKE_NVML");
	return pid;
}

/* Reads the event stream @fd until one line has both @a and @b. */
static void stream_until(int fd, const char *a, const char *b)
{
	static char buf[1 << 16];
	static size_t len;

	for (;;) {
		char *nl;
		ssize_t k;

		while ((nl = memchr(buf, '\n', len))) {
			size_t n = (size_t)(nl - buf) + 1;
			bool hit = memmem(buf, n, a, strlen(a)) && memmem(buf, n, b, strlen(b));

			memmove(buf, buf + n, len - n);
			len -= n;
			if (hit)
				return;
		}
		if (len == sizeof(buf))
			len = 0; /* a line longer than the buffer: not one of ours */
		k = read(fd, buf + len, sizeof(buf) - len);
		if (k <= 0)
			die("events");
		len += (size_t)k;
	}
}

/* A connection to xpud's /v1/events, subscribed. */
static int subscribe(const char *sock)
{
	static const char req[] = "GET /v1/events HTTP/1.1\r\nHost: xpud\r\n\r\n";
	int fd = connect_to(sock);

	if (write(fd, req, sizeof(req) - 1) < 0)
		die("write");
	stream_until(fd, "subscribed", "subscribed");
	return fd;
}

/* A writer of the FIFO @path, once xpud reads it (it opens it after its first inventory). */
static int fifo_writer(const char *path)
{
	for (int i = 0; i < 500; i++) {
		int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

		if (fd >= 0)
			return fd;
		usleep(10 * 1000);
	}
	die(path);
	return -1;
}

/*
 * @n XIDs 79 (a reset: health-changed at once) through the kernel log (@kmsg) or NVML's events,
 * each timed from the write to its health-changed on /v1/events; a GPU keeps the XID until it
 * is reset, so xpud starts afresh every 8 GPUs. Returns the times in ms in @ret.
 */
static void xid_latencies(const char *bin, const char *hgx, const char *nvml, int n, double *ret)
{
	static const char *const gpus[] = { "0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0",
					    "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0",
					    "0000:ba:00.0", "0000:db:00.0" };
	char *root = NULL, *err = NULL, sock[4096], fifo[4096], line[256], id[64];
	int events = -1, writer = -1;
	pid_t pid = 0;

	if (fixture_build_temp(hgx, &root, &err) < 0)
		die("fixture");
	snprintf(sock, sizeof(sock), "%s/run/xpud.sock", root);
	snprintf(fifo, sizeof(fifo), "%s/dev/kmsg", root);
	for (int i = 0; i < n; i++) {
		const char *gpu = gpus[i % 8];
		int len;
		double start;

		if (i % 8 == 0) {
			if (pid) {
				close(events);
				close(writer);
				stop(pid);
			}
			pid = start_xpud_nvml(bin, root, sock, NULL, nvml);
			writer = fifo_writer(fifo);
			events = subscribe(sock);
		}
		len = snprintf(line, sizeof(line),
			       "4,%d,%d,-;NVRM: Xid (PCI:%.10s): 79, pid='<unknown>', "
			       "name=<unknown>, GPU has fallen off the bus.\n",
			       i + 1, (i + 1) * 1000, gpu);
		snprintf(id, sizeof(id), "\"device_id\":\"%s\"", gpu);
		start = now_us();
		if (write(writer, line, (size_t)len) != len)
			die("write");
		stream_until(events, "\"health-changed\"", id);
		ret[i] = (now_us() - start) / 1000.0;
	}
	close(events);
	close(writer);
	stop(pid);
	fixture_destroy(root);
	free(root);
	free(err);
}

/* The median uevent to device-added of this run: the baseline of the kernel log's XIDs, the
 * other kernel event xpud reacts to. */
static double uevent_median_ms;

static void bench_kmsg(const char *bin, const char *hgx, const char *nvml, int n)
{
	double *k = calloc((size_t)n, sizeof(double));

	if (!k)
		die("calloc");
	xid_latencies(bin, hgx, nvml, n, k);
	if (uevent_median_ms > 0)
		printf("| XID line in the kernel log to health-changed on /v1/events, median of %d "
		       "| %.2f ms | uevent to device-added: %.2f ms | %.2fx | < 100 ms |\n",
		       n, percentile(k, (size_t)n, 0.5), uevent_median_ms,
		       percentile(k, (size_t)n, 0.5) / uevent_median_ms);
	else
		printf("| XID line in the kernel log to health-changed on /v1/events, median of %d "
		       "| %.2f ms | - | - | < 100 ms |\n",
		       n, percentile(k, (size_t)n, 0.5));
	printf("| XID line in the kernel log to health-changed, p99 | %.2f ms | - | - | - |\n",
	       percentile(k, (size_t)n, 0.99));
	free(k);
}

/* Seconds of CPU in @ru. */
static double cpu_ms(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e3 +
	       (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e3;
}

/* Runs @argv to its end (output to /dev/null) @n times: median wall and CPU ms. */
static void run_median(char *const *argv, int n, double *ret_wall, double *ret_cpu)
{
	double wall[64], cpu[64];

	n = MIN(n, 64);
	for (int i = 0; i < n; i++) {
		struct rusage ru;
		double start = now_us();
		int status;
		pid_t pid = fork();

		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
			execv(argv[0], argv);
			_exit(127);
		}
		if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			die(argv[0]);
		wall[i] = (now_us() - start) / 1000.0;
		cpu[i] = cpu_ms(&ru);
	}
	*ret_wall = percentile(wall, (size_t)n, 0.5);
	*ret_cpu = percentile(cpu, (size_t)n, 0.5);
}

/* Threads of process @pid. */
static long threads_of(pid_t pid)
{
	char path[64], *text = NULL, *p;
	long n = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_attr_at(AT_FDCWD, path, 1 << 16, &text) < 0)
		return -1;
	p = strstr(text, "Threads:");
	if (p)
		n = strtol(p + 8, NULL, 10);
	free(text);
	return n;
}

/*
 * The NVML helper: what one run costs (what every health cycle costs: one run each), against
 * starting /bin/true; and xpud from start to the first complete inventory (the CUDA helper's
 * facts merged), against start to the first answer.
 */
static void bench_helper(const char *bin, const char *root, const char *sock, const char *nvml)
{
	char helper[4096], desc[4096], cuda[4096], *slash;
	char *argv[] = { helper, (char *)"--root", (char *)root, (char *)"nvml", (char *)nvml,
			 (char *)"enumerate", NULL };
	char *true_argv[] = { (char *)"/bin/true", NULL };
	double wall, cpu, twall, tcpu, complete[5];
	long rss = 0, threads = 0;

	snprintf(helper, sizeof(helper), "%s", bin);
	slash = strrchr(helper, '/');
	snprintf(slash ? slash + 1 : helper, sizeof(helper) - (size_t)(slash ? slash + 1 - helper : 0),
		 "xpud-helper");
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	setenv("XPU_FAKE_NVML", desc, 1);
	run_median(argv, 20, &wall, &cpu);
	unsetenv("XPU_FAKE_NVML");
	run_median(true_argv, 20, &twall, &tcpu);
	printf("| one NVML helper run (a health cycle), HGX, fake NVML, median of 20: wall | "
	       "%.2f ms | /bin/true: %.2f ms | %.1fx | - |\n",
	       wall, twall, wall / twall);
	printf("| the same, CPU (user + system) | %.2f ms | /bin/true: %.2f ms | %.1fx | - |\n", cpu,
	       tcpu, cpu / tcpu);

	/* the CUDA fake beside the NVML one */
	snprintf(cuda, sizeof(cuda), "%s", nvml);
	slash = strrchr(cuda, '/');
	if (slash) {
		strcpy(slash + 1, "libcuda.so.1");
		setenv("XPU_CUDA_LIBRARY", cuda, 1);
	}
	for (int i = 0; i < 5; i++) {
		double start = now_us();
		pid_t pid = start_xpud_nvml(bin, root, sock, NULL, nvml);

		for (;;) {
			static char buf[1 << 20];
			int fd = connect_to(sock);

			(void)exchange(fd, "GET", "/v1/devices", NULL, buf, sizeof(buf));
			close(fd);
			if (strstr(buf, "cuda_ordinal"))
				break;
			if (now_us() - start > 20e6)
				die("the CUDA facts never came");
			usleep(2000);
		}
		complete[i] = (now_us() - start) / 1000.0;
		if (i == 0) {
			usleep(600 * 1000);
			rss = rss_kib(pid);
			threads = threads_of(pid);
		}
		stop(pid);
	}
	unsetenv("XPU_CUDA_LIBRARY");
	printf("| xpud RSS, HGX with NVML (fake) through the helper, CUDA probed | %.2f MiB | - | "
	       "- | < 8 MiB |\n",
	       (double)rss / 1024.0);
	printf("| xpud threads, the same | %ld | - | - | 1 |\n", threads);
	printf("| start to the first complete inventory (CUDA facts merged), median of 5 | "
	       "%.1f ms | - | - | - |\n",
	       percentile(complete, 5, 0.5));
}

/* Whether device @id of GET /v1/plan has a repartition in progress. */
static bool repartitioning(int fd, const char *id)
{
	static const char get[] = "GET /v1/plan HTTP/1.1\r\nHost: xpud\r\n\r\n";
	static char buf[1 << 20];
	const char *body;
	json_t *doc, *d;
	bool busy = false;
	size_t i;

	if (write(fd, get, sizeof(get) - 1) != (ssize_t)sizeof(get) - 1)
		die("write");
	(void)read_response(fd, buf, sizeof(buf));
	body = strstr(buf, "\r\n\r\n");
	doc = body ? json_loads(body + 4, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
	if (!doc)
		die("plan");
	json_array_foreach(json_object_get(doc, "devices"), i, d)
		if (streq_ptr(json_string_value(json_object_get(d, "device")), id))
			busy = json_is_object(json_object_get(d, "repartition"));
	json_decref(doc);
	return busy;
}

/* Grants one whole GPU and releases it on @fd; returns the grant's round trip. */
static double grant_release(int fd)
{
	static char buf[1 << 16];
	char path[128], *id;
	double t;

	t = exchange(fd, "POST", "/v1/allocations", "{\"resource\": \"nvidia.com/gpu\", \"count\": 1}",
		     buf, sizeof(buf));
	id = strstr(buf, "\"id\":\"");
	if (!strstr(buf, " 201 ") || !id)
		die("grant");
	snprintf(path, sizeof(path), "/v1/allocations/%.18s", id + 6);
	(void)exchange(fd, "DELETE", path, NULL, buf, sizeof(buf));
	return t;
}

/*
 * Grants (and releases) of whole GPUs while the MIG GPU's layout is being made, next to the same
 * grants with nothing being made: the apply runs off the loop, so the ratio should be about 1.
 */
static void bench_repartition(const char *bin, const char *root, const char *nvml, int n)
{
	static const char mig_gpu[] = "0000:db:00.0";
	static char buf[1 << 16];
	char desc[4096], sock[4200], state[] = "/dev/shm/xpud-bench-rp-XXXXXX", cmd[256];
	double *base = calloc((size_t)n, sizeof(double)), *during = calloc(4096, sizeof(double));
	double start, took, max = 0;
	json_t *doc, *g;
	size_t i, m = 0;
	pid_t pid;
	int fd;

	/* every GPU instance the fake creates on the MIG GPU takes a second */
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	doc = json_load_file(desc, 0, NULL);
	if (!doc)
		die("fake-nvml.json");
	json_array_foreach(json_object_get(doc, "gpus"), i, g)
		if (streq_ptr(json_string_value(json_object_get(g, "bus_id")), mig_gpu))
			json_object_set_new(g, "hang_ms",
					    json_pack("{s:i}", "nvmlDeviceCreateGpuInstance", 1000));
	if (json_dump_file(doc, desc, 0) < 0)
		die("fake-nvml.json");
	json_decref(doc);
	if (!mkdtemp(state))
		die("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/run/xpud-rp.sock", root);
	pid = start_xpud_nvml(bin, root, sock, state, nvml);
	fd = connect_to(sock);

	for (int k = -n / 10; k < n; k++) {
		double t = grant_release(fd);

		if (k >= 0)
			base[k] = t;
	}

	start = now_us();
	(void)exchange(fd, "POST", "/v1/repartition",
		       "{\"device\": \"0000:db:00.0\", \"layout\": \"mig: [3g.40gb, 3g.40gb]\"}",
		       buf, sizeof(buf));
	if (!strstr(buf, " 202 "))
		die("repartition");
	while (m < 4096 && repartitioning(fd, mig_gpu)) {
		double t = grant_release(fd);

		during[m++] = t;
		max = t > max ? t : max;
	}
	took = (now_us() - start) / 1000.0;
	close(fd);
	stop(pid);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
	(void)!system(cmd);
	if (m == 0)
		die("no grant during the apply");
	printf("| POST /v1/allocations of another GPU while a MIG layout is made (%.0f ms, NVML "
	       "1 s per instance), median of %zu | %.1f us | nothing being made: %.1f us | %.2fx | "
	       "~1x |\n",
	       took, m, percentile(during, m, 0.5), percentile(base, (size_t)n, 0.5),
	       percentile(during, m, 0.5) / percentile(base, (size_t)n, 0.5));
	printf("| the same, slowest grant during the apply | %.1f us | - | - | << the apply |\n",
	       max);
	free(base);
	free(during);
}

/*
 * The HGX node twice over: the eight GPUs again in PCI domain 1, with their own minors, UUIDs
 * and NVML records, on the same NVSwitches. Caller frees.
 */
static char *sixteen_gpus_json(const char *hgx)
{
	json_t *doc = json_loads(hgx, 0, NULL), *pci, *gpus, *e;
	size_t i, n;
	char *s;

	if (!doc)
		die("hgx json");
	json_object_set_new(doc, "name", json_string("hgx-16"));
	pci = json_object_get(doc, "pci");
	n = json_array_size(pci);
	for (i = 0; i < n; i++) {
		json_t *c, *nv, *parents, *p;
		char buf[64];
		size_t k;

		e = json_array_get(pci, i);
		if (!streq_ptr(json_string_value(json_object_get(e, "template")), "h100"))
			continue;
		c = json_deep_copy(e);
		snprintf(buf, sizeof(buf), "0001%s", json_string_value(json_object_get(e, "address")) + 4);
		json_object_set_new(c, "address", json_string(buf));
		parents = json_object_get(c, "parents");
		json_array_foreach(parents, k, p) {
			snprintf(buf, sizeof(buf), "0001%s", json_string_value(p) + 4);
			json_array_set_new(parents, k, json_string(buf));
		}
		nv = json_object_get(c, "nvidia");
		json_object_set_new(nv, "minor",
				    json_integer(json_integer_value(json_object_get(nv, "minor")) + 8));
		snprintf(buf, sizeof(buf), "%.35s1", json_string_value(json_object_get(nv, "uuid")));
		json_object_set_new(nv, "uuid", json_string(buf));
		json_array_append_new(pci, c);
	}
	gpus = json_object_get(json_object_get(doc, "nvml"), "gpus");
	n = json_array_size(gpus);
	for (i = 0; i < n; i++) {
		json_t *c = json_deep_copy(json_array_get(gpus, i)), *topo;
		char buf[64];

		snprintf(buf, sizeof(buf), "0001%s", json_string_value(json_object_get(c, "bus_id")) + 4);
		json_object_set_new(c, "bus_id", json_string(buf));
		json_object_set_new(c, "minor",
				    json_integer(json_integer_value(json_object_get(c, "minor")) + 8));
		snprintf(buf, sizeof(buf), "%.35s1", json_string_value(json_object_get(c, "uuid")));
		json_object_set_new(c, "uuid", json_string(buf));
		snprintf(buf, sizeof(buf), "%s9", json_string_value(json_object_get(c, "serial")));
		json_object_set_new(c, "serial", json_string(buf));
		topo = json_object_get(c, "topology");
		if (json_is_string(json_object_get(topo, "switch"))) {
			snprintf(buf, sizeof(buf), "0001%s",
				 json_string_value(json_object_get(topo, "switch")) + 4);
			json_object_set_new(topo, "switch", json_string(buf));
		}
		json_array_append_new(gpus, c);
	}
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return s;
}

/* Median round trips of POST /v1/fit of the shape @shape (JSON members; with @vary a compute
 * fraction that differs each time, so that no answer can be reused) and of GET /v1/version,
 * interleaved on one connection. */
static void fit_pair(int fd, const char *shape, bool vary, int n, double *ret_fit,
		     double *ret_base)
{
	static char buf[1 << 16];
	double *f = calloc((size_t)n, sizeof(double)), *b = calloc((size_t)n, sizeof(double));

	for (int i = -n / 10; i < n; i++) {
		char req[256];
		double tf, tb;

		snprintf(req, sizeof(req), "{%s, \"compute\": 0.%d}", shape, vary ? 1000 + i + n : 0);
		tf = exchange(fd, "POST", "/v1/fit", req, buf, sizeof(buf));
		if (!strstr(buf, " 200 "))
			die("fit");
		tb = exchange(fd, "GET", "/v1/version", NULL, buf, sizeof(buf));
		if (i >= 0) {
			f[i] = tf;
			b[i] = tb;
		}
	}
	*ret_fit = percentile(f, (size_t)n, 0.5);
	*ret_base = percentile(b, (size_t)n, 0.5);
	free(f);
	free(b);
}

/* Root's GET /v1/version round trips, median of @n. */
static double version_median(int fd, int n)
{
	static char buf[1 << 16];
	double *t = calloc((size_t)n, sizeof(double)), med;

	for (int i = 0; i < n; i++)
		t[i] = exchange(fd, "GET", "/v1/version", NULL, buf, sizeof(buf));
	med = percentile(t, (size_t)n, 0.5);
	free(t);
	return med;
}

/* An unprivileged client asking for fits of 8 GPUs, each a new shape, until killed; it counts
 * its 200 and 429 answers in @counts (shared memory: [0] answered, [1] refused). */
static void fit_hammer(const char *sock, long *counts)
{
	static char buf[1 << 16];
	int fd;

	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
		_exit(1);
	fd = connect_to(sock);
	for (long i = 0;; i++) {
		char body[128];

		snprintf(body, sizeof(body),
			 "{\"resource\": \"nvidia.com/gpu\", \"count\": 8, \"compute\": 0.%ld}",
			 1000 + i);
		(void)exchange(fd, "POST", "/v1/fit", body, buf, sizeof(buf));
		if (strstr(buf, " 200 "))
			__atomic_fetch_add(&counts[0], 1, __ATOMIC_RELAXED);
		else if (strstr(buf, " 429 "))
			__atomic_fetch_add(&counts[1], 1, __ATOMIC_RELAXED);
		else
			_exit(2);
	}
}

static void bench_fit(const char *bin, const char *hgx, const char *nvml, int n)
{
	static const char *const shapes[][2] = {
		{ "1 GPU", "\"resource\": \"nvidia.com/gpu\", \"count\": 1" },
		{ "4 GPUs", "\"resource\": \"nvidia.com/gpu\", \"count\": 4" },
		{ "8 GPUs", "\"resource\": \"nvidia.com/gpu\", \"count\": 8" },
	};
	char *json = sixteen_gpus_json(hgx), *root = NULL, *err = NULL, sock[4200], run[4200];
	char state[] = "/dev/shm/xpud-bench-fit-XXXXXX", cmd[256];
	pid_t pid;
	int fd;

	if (fixture_build_temp(json, &root, &err) < 0) {
		fprintf(stderr, "bench-xpud: fixture: %s\n", err ?: "?");
		exit(1);
	}
	if (!mkdtemp(state))
		die("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/run/xpud-fit.sock", root);
	pid = nvml ? start_xpud_nvml(bin, root, sock, state, nvml)
		   : start_xpud_state(bin, root, sock, state);
	fd = connect_to(sock);
	for (size_t k = 0; k < ELEMENTSOF(shapes); k++) {
		double fit, base, fit_new, base_new;

		fit_pair(fd, shapes[k][1], false, n, &fit, &base);
		fit_pair(fd, shapes[k][1], true, n, &fit_new, &base_new);
		printf("| POST /v1/fit of %s, 16 GPUs%s, the same shape again, median | %.1f us | "
		       "GET /v1/version: %.1f us | %.2fx | - |\n",
		       shapes[k][0], nvml ? " (NVML, fake)" : "", fit, base, fit / base);
		printf("| POST /v1/fit of %s, 16 GPUs, a new shape each time, median | %.1f us | "
		       "GET /v1/version: %.1f us | %.2fx | - |\n",
		       shapes[k][0], fit_new, base_new, fit_new / base_new);
	}

	if (geteuid() == 0) {
		long *counts = mmap(NULL, 2 * sizeof(long), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		pid_t kids[16];
		double idle, busy;

		if (counts == MAP_FAILED)
			die("mmap");
		counts[0] = counts[1] = 0;
		/* let "nobody" reach the socket */
		snprintf(run, sizeof(run), "%s/run", root);
		if (chmod(root, 0755) < 0 || chmod(run, 0755) < 0 || chmod(sock, 0666) < 0)
			die("chmod");
		idle = version_median(fd, n);
		for (size_t k = 0; k < ELEMENTSOF(kids); k++) {
			kids[k] = fork();
			if (kids[k] == 0)
				fit_hammer(sock, counts);
		}
		usleep(200 * 1000);
		busy = version_median(fd, n);
		for (size_t k = 0; k < ELEMENTSOF(kids); k++) {
			kill(kids[k], SIGKILL);
			waitpid(kids[k], NULL, 0);
		}
		printf("| root's GET /v1/version while 16 unprivileged clients ask for fits of 8 GPUs "
		       "(%ld answered, %ld refused with 429), median | %.1f us | nobody else: "
		       "%.1f us | %.2fx | - |\n",
		       counts[0], counts[1], busy, idle, busy / idle);
		munmap(counts, 2 * sizeof(long));
	}
	close(fd);
	stop(pid);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
	(void)!system(cmd);
	fixture_destroy(root);
	free(root);
	free(json);
}

/* User plus system CPU of @pid in seconds, from /proc/PID/stat. */
static double cpu_seconds(pid_t pid)
{
	char path[64], *text = NULL, *p;
	unsigned long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_attr_at(AT_FDCWD, path, 1 << 16, &text) < 0)
		die("stat");
	p = strrchr(text, ')'); /* the command may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		die("stat");
	free(text);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * The metrics listener on the HGX node with the fake NVML, its last GPU in seven MIG instances:
 * a scrape against a bare echo of the same bytes, interleaved; xpud's CPU over a minute of
 * scrapes every 15 s with the page renewed every 15 s; its RSS with metrics on.
 */
static void bench_metrics(const char *bin, const char *hgx, const char *nvml, int n)
{
	static const char scrape[] = "GET /metrics HTTP/1.1\r\nHost: xpud\r\n\r\n";
	static char buf[4 << 20];
	char *root = NULL, *err = NULL, sock[4200], msock[4200], bare[4200], conf[4200], desc[4200];
	char state[] = "/dev/shm/xpud-bench-metrics-XXXXXX", cmd[256];
	double med[2], p99[2], cpu0, cpu1;
	size_t size[2], page;
	const char *saved = request;
	pid_t pid, srv;
	FILE *f;
	int fd;

	if (fixture_build_temp(hgx, &root, &err) < 0 || !mkdtemp(state))
		die("fixture");
	snprintf(sock, sizeof(sock), "%s/run/xpud.sock", root);
	snprintf(msock, sizeof(msock), "%s/run/metrics.sock", root);
	snprintf(bare, sizeof(bare), "%s/run/bare.sock", root);
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	f = fopen(conf, "we");
	if (!f)
		die("config");
	fprintf(f, "metrics: {listen: \"unix:%s\", interval: 15s}\npartitions:\n"
		   "  - match: {pci: \"0000:db:00.0\"}\n    mig: all-1g.10gb\n", msock);
	fclose(f);
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		pin(true);
		dup2(devnull, STDERR_FILENO);
		setenv("XPU_NVML_LIBRARY", nvml, 1);
		setenv("XPU_FAKE_NVML", desc, 1);
		execl(bin, bin, "--root", root, "--socket", sock, "--state-dir", state, "--config",
		      conf, "--log-level", "warning", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; access(msock, F_OK) != 0; i++) {
		if (i > 500)
			die("xpud did not start");
		usleep(20 * 1000);
	}
	usleep(500 * 1000); /* the helper's first answer and CUDA probe */

	request = scrape;
	fd = connect_to(msock);
	(void)round_trip(fd, buf, sizeof(buf), &page);
	close(fd);
	srv = bare_server(bare, page);
	measure_pair(msock, bare, n, med, p99, size);
	stop(srv);
	request = saved;
	printf("| GET /metrics, HGX with 7 MIG slices (%zu B), median | %.1f us | bare socket echo "
	       "of %zu B: %.1f us | %.2fx | < 1 ms, <= 3x |\n",
	       size[0], med[0], size[1], med[1], med[0] / med[1]);
	printf("| GET /metrics, HGX, p99 | %.1f us | %.1f us | %.2fx | - |\n", p99[0], p99[1],
	       p99[0] / p99[1]);

	/* a minute as Prometheus sees it: one scrape every 15 s, on a new connection */
	sleep(2);
	cpu0 = cpu_seconds(pid);
	for (int i = 0; i < 4; i++) {
		fd = connect_to(msock);
		request = scrape;
		(void)round_trip(fd, buf, sizeof(buf), &page);
		request = saved;
		close(fd);
		sleep(15);
	}
	cpu1 = cpu_seconds(pid);
	printf("| xpud CPU with metrics on, a scrape every 15 s, over 60 s | %.3f%% of a core | - | "
	       "- | < 0.2%% |\n",
	       (cpu1 - cpu0) / 60.0 * 100.0);
	printf("| xpud RSS with metrics on (fake NVML in the helper) | %.1f MiB | - | - | < 8 MiB "
	       "|\n",
	       (double)rss_kib(pid) / 1024.0);
	stop(pid);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
	(void)!system(cmd);
	fixture_destroy(root);
	free(root);
}

int main(int argc, char *argv[])
{
	const struct sim_node *node = sim_node_find("hgx-h100");
	double xm, xp, xc, bm, bp, lat[16];
	char *root = NULL, *err = NULL, sock[4096], bare[4096];
	size_t xsize, bsize;
	int n = argc > 2 ? atoi(argv[2]) : 2000;
	pid_t xpud, srv;

	if (argc < 2 || !node) {
		fprintf(stderr, "Usage: bench-xpud XPUD_BIN [ITERATIONS]\n");
		return 1;
	}
	log_set_max_level(LOG_ERR);
	pin(false);
	if (streq_ptr(getenv("XPU_BENCH_ONLY"), "fit")) { /* the fit lines alone */
		bench_fit(argv[1], node->json, argc > 3 ? argv[3] : NULL, n / 4 > 50 ? n / 4 : 50);
		return 0;
	}
	if (streq_ptr(getenv("XPU_BENCH_ONLY"), "metrics") && argc > 3) { /* the metrics lines */
		bench_metrics(argv[1], node->json, argv[3], n);
		return 0;
	}
	if (streq_ptr(getenv("XPU_BENCH_ONLY"), "enumerate")) { /* the enumeration lines alone */
		bench_enumerate(10);
		return 0;
	}
	if (streq_ptr(getenv("XPU_BENCH_ONLY"), "kmsg") && argc > 3) { /* the XID lines alone */
		bench_kmsg(argv[1], node->json, argv[3], MIN(MAX(n / 10, 16), 200));
		return 0;
	}
	if (fixture_build_temp(node->json, &root, &err) < 0) {
		fprintf(stderr, "bench-xpud: %s\n", err ?: "fixture");
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/run/xpud.sock", root);
	snprintf(bare, sizeof(bare), "%s/run/bare.sock", root);
	if (streq_ptr(getenv("XPU_BENCH_ONLY"), "helper") && argc > 3) { /* the helper's lines */
		bench_helper(argv[1], root, sock, argv[3]);
		fixture_destroy(root);
		free(root);
		return 0;
	}

	printf("| measurement | xpud | baseline (same run) | ratio | target |\n");
	printf("|---|---|---|---|---|\n");

	xpud = start_xpud(argv[1], root, sock);
	{
		static char buf[4 << 20];
		int fd = connect_to(sock);

		(void)round_trip(fd, buf, sizeof(buf), &xsize);
		close(fd);
	}
	srv = bare_server(bare, xsize);
	{
		double med[2], p99[2];
		size_t size[2];

		measure_pair(sock, bare, n, med, p99, size);
		xm = med[0], bm = med[1], xp = p99[0], bp = p99[1];
		xsize = size[0], bsize = size[1];
	}
	stop(srv);
	{
		/* The first request after a change rebuilds the document: a rescan (which starts
		 * a new inventory generation) before each timed request defeats the cache. */
		static const char rescan[] = "POST /v1/rescan HTTP/1.1\r\nHost: xpud\r\n"
					     "Content-Length: 0\r\n\r\n";
		static char buf[4 << 20];
		int m = n / 10 > 10 ? n / 10 : 10, fd = connect_to(sock);
		double *t = calloc((size_t)m, sizeof(double));
		size_t size;

		for (int i = 0; i < m; i++) {
			if (write(fd, rescan, sizeof(rescan) - 1) < 0)
				die("write");
			(void)read_response(fd, buf, sizeof(buf));
			t[i] = round_trip(fd, buf, sizeof(buf), &size);
		}
		close(fd);
		xc = percentile(t, (size_t)m, 0.5);
		free(t);
	}
	printf("| GET /v1/devices, HGX (%zu B), median | %.1f us | bare socket echo of %zu B: "
	       "%.1f us | %.2fx | <= 3x |\n",
	       xsize, xm, bsize, bm, xm / bm);
	printf("| GET /v1/devices, HGX, p99 | %.1f us | %.1f us | %.2fx | - |\n", xp, bp, xp / bp);
	printf("| GET /v1/devices, HGX, first after a change, median | %.1f us | %.1f us | %.2fx "
	       "| - |\n",
	       xc, bm, xc / bm);

	for (int i = 0; i < 16; i++)
		lat[i] = uevent_latency_ms(root, sock, i);
	uevent_median_ms = percentile(lat, 16, 0.5);
	printf("| uevent to device-added on /v1/events, median of 16 | %.2f ms | - | - | < 100 ms "
	       "|\n",
	       uevent_median_ms);

	{
		double grant, rel, grant_mem, rel_mem;
		long rss[2] = { 0, 0 }, rss_mem[2];
		int cycles = n * 5; /* 10,000 with the default 2,000 */
		char mem_sock[4200], mem_state[] = "/dev/shm/xpud-bench-state-XXXXXX";
		pid_t mem;

		bench_allocations(sock, xpud, cycles, &grant, &rel, rss);
		/* the same with the state on tmpfs, where fsync costs nothing: what is not I/O */
		if (!mkdtemp(mem_state))
			die("mkdtemp");
		snprintf(mem_sock, sizeof(mem_sock), "%s/run/xpud-mem.sock", root);
		mem = start_xpud_state(argv[1], root, mem_sock, mem_state);
		bench_allocations(mem_sock, mem, cycles / 5, &grant_mem, &rel_mem, rss_mem);
		stop(mem);
		{
			char cmd[256];

			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", mem_state);
			(void)!system(cmd);
		}
		printf("| POST /v1/allocations (1 GPU), HGX, state fsync'd to disk, median of %d | "
		       "%.1f us | state on tmpfs: %.1f us | %.2fx | < 1 ms |\n",
		       cycles, grant, grant_mem, grant / grant_mem);
		printf("| DELETE /v1/allocations/ID, median of %d | %.1f us | state on tmpfs: %.1f us "
		       "| %.2fx | - |\n",
		       cycles, rel, rel_mem, rel / rel_mem);
		printf("| POST /v1/allocations, state on tmpfs | %.1f us | GET /v1/devices: %.1f us "
		       "| %.2fx | - |\n",
		       grant_mem, xm, grant_mem / xm);
		printf("| xpud RSS before and after %d allocate/release cycles | %.2f -> %.2f MiB | "
		       "- | %+ld KiB | flat |\n",
		       cycles, (double)rss[0] / 1024.0, (double)rss[1] / 1024.0, rss[1] - rss[0]);
	}

	long xr = rss_kib(xpud), sr;
	pid_t sleeper = fork();

	if (sleeper == 0) {
		execl("/bin/sleep", "sleep", "10", (char *)NULL);
		_exit(127);
	}
	usleep(100 * 1000);
	sr = rss_kib(sleeper);
	kill(sleeper, SIGKILL);
	waitpid(sleeper, NULL, 0);
	printf("| xpud RSS, HGX loaded, after %d requests | %.2f MiB | /bin/sleep: %.2f MiB | "
	       "%.1fx | < 8 MiB |\n",
	       n * 2, (double)xr / 1024.0, (double)sr / 1024.0, (double)xr / (double)sr);
	stop(xpud);

	if (argc > 3) {
		double with[5], without[5];
		char cuda[4096], *slash;
		long nvml_rss = 0;

		/* the CUDA fake beside the NVML one: the helper process runs as it would */
		snprintf(cuda, sizeof(cuda), "%s", argv[3]);
		slash = strrchr(cuda, '/');
		if (slash && access(argv[3], R_OK) == 0) {
			strcpy(slash + 1, "libcuda.so.1");
			setenv("XPU_CUDA_LIBRARY", cuda, 1);
		}
		for (int i = 0; i < 5; i++) {
			without[i] = ready_ms(argv[1], root, sock, NULL, NULL);
			with[i] = ready_ms(argv[1], root, sock, argv[3], i == 0 ? &nvml_rss : NULL);
		}
		unsetenv("XPU_CUDA_LIBRARY");
		(void)nvml_rss;
		printf("| start to first answer, HGX, with NVML (fake), median of 5 | %.1f ms | "
		       "sysfs only: %.1f ms | %.2fx | - |\n",
		       percentile(with, 5, 0.5), percentile(without, 5, 0.5),
		       percentile(with, 5, 0.5) / percentile(without, 5, 0.5));
		bench_helper(argv[1], root, sock, argv[3]);
		bench_repartition(argv[1], root, argv[3], n / 10 > 20 ? n / 10 : 20);
		bench_kmsg(argv[1], node->json, argv[3], MIN(MAX(n / 10, 16), 200));
	}
	bench_fit(argv[1], node->json, argc > 3 ? argv[3] : NULL, n / 4 > 50 ? n / 4 : 50);
	bench_enumerate(10);
	fixture_destroy(root);
	free(root);
	free(err);
	return 0;
}
