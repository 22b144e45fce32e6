// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The Prometheus listener (docs/metrics.md): the page of the HGX node with MIG slices, field by
 * field; OpenMetrics when asked for; label values escaped; a device hot-plugged and a backend
 * failing while scraped; a client that hangs up in the middle of the page; a node of 10,000
 * slices; `promtool check metrics` on the pages, and a real Prometheus server scraping xpud.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "procstat.h"
#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

#define OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* A loopback TCP port nobody listens on now. */
static int free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static int connect_port(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		fail_msg("cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
	return fd;
}

struct reply {
	int status;
	char *head; /* the status line and headers */
	char *body;
	size_t body_len;
};

static void reply_done(struct reply *r)
{
	free(r->head);
	free(r->body);
	*r = (struct reply){};
}

/* GET @path on 127.0.0.1:@port with @accept (NULL: none), until the server closes. */
static struct reply http_get(int port, const char *path, const char *accept)
{
	struct reply r = {};
	char req[1024], *all = NULL, *sep;
	size_t len = 0, cap = 0;
	int fd = connect_port(port);

	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sConnection: close\r\n\r\n", path,
		 accept ? "Accept: " : "", accept ?: "", accept ? "\r\n" : "");
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (cap - len < 65536) {
			cap = cap * 2 + 65536;
			all = realloc(all, cap + 1);
			assert_non_null(all);
		}
		if (poll(&p, 1, 10000) != 1)
			fail_msg("no answer to GET %s within 10 s", path);
		n = read(fd, all + len, cap - len);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	all[len] = '\0';
	sep = strstr(all, "\r\n\r\n");
	assert_non_null(sep);
	r.head = strndup(all, (size_t)(sep - all));
	r.body_len = len - (size_t)(sep + 4 - all);
	r.body = malloc(r.body_len + 1);
	memcpy(r.body, sep + 4, r.body_len + 1);
	assert_int_equal(sscanf(all, "HTTP/1.1 %d", &r.status), 1);
	free(all);
	return r;
}

/* The page (text format), asserting 200. */
static char *scrape(int port)
{
	struct reply r = http_get(port, "/metrics", NULL);
	char *body;

	assert_int_equal(r.status, 200);
	body = TAKE_PTR(r.body);
	reply_done(&r);
	return body;
}

/* The value of the sample whose line starts with @series ("name{labels}"), or -1 if absent. */
static double sample(const char *page, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

/* Waits up to 10 s for @series to be @value on the page; the page then (caller frees). */
static char *wait_sample(int port, const char *series, double value)
{
	long long deadline = test_now_ms() + 10000;
	char *page;

	for (;;) {
		page = scrape(port);
		if (sample(page, series) == value)
			return page;
		if (test_now_ms() > deadline)
			fail_msg("%s is %g, not %g, after 10 s:\n%.2000s", series,
				 sample(page, series), value, page);
		free(page);
		usleep(50 * 1000);
	}
}

static size_t count_lines(const char *page, const char *prefix)
{
	size_t n = 0, k = strlen(prefix);

	for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		n += strncmp(l, prefix, k) == 0;
	return n;
}

/* Every family of the page has one HELP and one TYPE line, before its samples. */
static void assert_families_described(const char *page)
{
	char name[256] = "";

	for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		size_t n = strcspn(l, "{ ");
		char help[300];

		if (l[0] == '#')
			continue;
		if (n < sizeof(name) && strncmp(l, name, n) == 0 && name[n] == '\0')
			continue;
		assert_true(n < sizeof(name));
		memcpy(name, l, n);
		name[n] = '\0';
		snprintf(help, sizeof(help), "# HELP %s ", name);
		if (count_lines(page, help) != 1)
			fail_msg("family %s has no HELP line", name);
		snprintf(help, sizeof(help), "# TYPE %s %s\n", name,
			 n > 6 && streq(name + n - 6, "_total") ? "counter" : "gauge");
		if (!strstr(page, help))
			fail_msg("family %s has no TYPE line", name);
	}
}

/* `promtool check metrics` on @page: skips the check (not the test) without promtool. */
static void promtool_check(const char *page, size_t len)
{
	char path[] = "/tmp/xpu-metrics-XXXXXX", cmd[512];
	int fd, status;

	if (access("/usr/bin/promtool", X_OK) != 0) {
		print_message("promtool is not installed (tests/deps.sh test): not checked\n");
		return;
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, page, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s > %s.out 2>&1", path,
		 path);
	status = system(cmd);
	if (status != 0) {
		char out[8192] = "";
		FILE *f;

		snprintf(cmd, sizeof(cmd), "%s.out", path);
		f = fopen(cmd, "re");
		if (f) {
			out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
			fclose(f);
		}
		fail_msg("promtool check metrics failed (%d):\n%s", status, out);
	}
	unlink(path);
	snprintf(cmd, sizeof(cmd), "%s.out", path);
	unlink(cmd);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#define UTIL(dev) "xpu_device_utilization_ratio{device=\"" dev "\"}"
#define MEM_UTIL(dev) "xpu_device_memory_utilization_ratio{device=\"" dev "\"}"
#define RAS(dev, block, type)                                                                      \
	"xpu_device_ras_errors_total{device=\"" dev "\",block=\"" block "\",type=\"" type "\"}"

/* xpud with the fake NVML on the HGX node, the last GPU cut into seven 1g.10gb instances, and
 * metrics on 127.0.0.1:*ret_port. */
static struct test_xpud *start_hgx(char *root, const char *extra_yaml, int *ret_port)
{
	char conf[4096], text[1024];
	int port = free_port();

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	snprintf(text, sizeof(text),
		 "metrics: {listen: \"127.0.0.1:%d\", interval: 1s}\n%s"
		 "partitions:\n  - match: {pci: \"0000:db:00.0\"}\n    mig: all-1g.10gb\n",
		 port, extra_yaml ?: "");
	write_text(conf, text);
	*ret_port = port;
	return test_xpud_start_nvml(root, (const char *[]){"--config", conf, NULL}, NULL);
}

static void test_hgx_page(void **state)
{
	int port;
	struct test_xpud *x = start_hgx(test_fixture_new("hgx-h100"), NULL, &port);
	json_t *doc = NULL;
	char *page = scrape(port);
	struct reply r;

	/* identity, memory, the backend's readings */
	assert_non_null(strstr(
	    page, "xpu_device_info{device=\"0000:18:00.0\",uuid=\"GPU-5632c4e7-030b-c56d-91cb-"
		  "e22ba6918354\",pci=\"0000:18:00.0\",vendor=\"nvidia\",model=\"NVIDIA H100 80GB "
		  "HBM3\",kind=\"gpu\",numa=\"0\",driver=\"nvidia\",backend=\"nvidia\"} 1\n"));
	assert_int_equal(count_lines(page, "xpu_device_info{"), 8);
	assert_true(sample(page, "xpu_device_memory_total_bytes{device=\"0000:18:00.0\"}") ==
		    85520809984.0);
	assert_true(sample(page, "xpu_device_temperature_celsius{device=\"0000:2a:00.0\"}") == 32);
	assert_true(sample(page, "xpu_device_power_watts{device=\"0000:2a:00.0\"}") == 73.31);
	/* the GPU's load and ECC counts, where NVML answers them (not 0000:18:00.0's) */
	assert_true(sample(page, UTIL("0000:2a:00.0")) == 0.87);
	assert_true(sample(page, MEM_UTIL("0000:2a:00.0")) == 0.41);
	assert_true(sample(page, RAS("0000:2a:00.0", "memory", "correctable")) == 12);
	assert_true(sample(page, RAS("0000:2a:00.0", "memory", "uncorrectable")) == 0);
	assert_true(sample(page, UTIL("0000:18:00.0")) == -1);
	assert_int_equal(count_lines(page, "xpu_device_ras_errors_total{"), 2);
	assert_non_null(strstr(page, "# TYPE xpu_device_ras_errors_total counter\n"));
	assert_true(sample(page, "xpu_device_health{device=\"0000:db:00.0\",phase=\"healthy\"}") ==
		    1);
	/* the slices: seven GPUs whole, the eighth as its MIG instances */
	assert_true(sample(page, "xpu_slices{resource=\"nvidia.com/gpu\",numa=\"0\"}") == 4);
	assert_true(sample(page, "xpu_slices{resource=\"nvidia.com/gpu\",numa=\"1\"}") == 3);
	assert_true(sample(page, "xpu_slices{resource=\"nvidia.com/mig-1g.10gb\",numa=\"1\"}") ==
		    7);
	assert_true(
	    sample(page, "xpu_slices_healthy{resource=\"nvidia.com/mig-1g.10gb\",numa=\"1\"}") ==
	    7);
	assert_int_equal(count_lines(page, "xpu_slice_healthy{"), 14);
	assert_true(sample(page, "xpu_backend_up{backend=\"nvidia\"}") == 1);
	assert_true(sample(page, "xpu_backend_last_refresh_age_seconds{backend=\"nvidia\"}") >= 0);
	assert_true(sample(page, "xpu_device_cordoned{device=\"0000:18:00.0\"}") == 0);
	assert_true(sample(page, "xpu_build_info{version=\"" XPU_VERSION "\"}") == 1);
	assert_true(sample(page, "xpu_scrape_duration_seconds") >= 0);
	assert_families_described(page);
	promtool_check(page, strlen(page));
	free(page);

	/* a grant and a cordon show on the next scrape: the page follows the inventory */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/gpu\", \"count\": 2}",
					   &doc),
			 201);
	json_decref(doc);
	page = wait_sample(port, "xpu_allocations{resource=\"nvidia.com/gpu\"}", 1);
	free(page);
	page = scrape(port);
	assert_true(
	    sample(page, "xpu_slices_allocated{resource=\"nvidia.com/gpu\",numa=\"0\"}") +
		sample(page, "xpu_slices_allocated{resource=\"nvidia.com/gpu\",numa=\"1\"}") ==
	    2);
	assert_int_equal(count_lines(page, "xpu_allocation_age_seconds{allocation=\"a-"), 1);
	free(page);
	assert_int_equal(test_request_body(x, "POST", "/v1/cordon",
					   "{\"device\": \"0000:ab:00.0\", \"reason\": \"fan\"}",
					   &doc),
			 200);
	json_decref(doc);
	free(wait_sample(port, "xpu_device_cordoned{device=\"0000:ab:00.0\"}", 1));

	/* what else the listener answers */
	r = http_get(port, "/v1/devices", NULL);
	assert_int_equal(r.status, 404);
	reply_done(&r);
	test_xpud_free(x);
}

#define LLM70 "xpu_shape_fits{shape=\"llm-70b\",resource=\"nvidia.com/gpu\"}"
#define LLM34 "xpu_shape_fits{shape=\"llm-34b\",resource=\"nvidia.com/gpu\"}"
#define PAIR "xpu_shape_fits{shape=\"pair\",resource=\"nvidia.com/gpu\"}"
#define RATIO "xpu_resource_allocated_ratio{resource=\"nvidia.com/gpu\"}"

/* POST @path with @body, expecting @status; the new allocation's id for a grant. */
static char *post(struct test_xpud *x, const char *path, const char *body, int status)
{
	json_t *doc = NULL;
	char *id = NULL;

	assert_int_equal(test_request_body(x, "POST", path, body, &doc), status);
	if (status == 201)
		id = strdup(json_string_value(json_object_get(doc, "id")));
	json_decref(doc);
	return id;
}

static void release(struct test_xpud *x, char *id)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/allocations/%s", id);
	assert_int_equal(test_request_body(x, "DELETE", path, NULL, NULL), 200);
	free(id);
}

/* Waits up to 10 s for a page with the shapes' fits and the ratio of GPUs at these values. */
static void expect_fits(int port, double llm70, double llm34, double pair, double ratio)
{
	long long deadline = test_now_ms() + 10000;

	for (;;) {
		char *page = scrape(port);
		double a = sample(page, LLM70), b = sample(page, LLM34), c = sample(page, PAIR),
		       d = sample(page, RATIO);

		free(page);
		if (a == llm70 && b == llm34 && c == pair && fabs(d - ratio) < 1e-9)
			return;
		if (test_now_ms() > deadline)
			fail_msg("llm-70b %g, llm-34b %g, pair %g, ratio %g; not %g, %g, %g, %g", a,
				 b, c, d, llm70, llm34, pair, ratio);
		usleep(50 * 1000);
	}
}

/*
 * The autoscaling signal on the HGX node (seven whole GPUs: four on NUMA node 0, three on
 * node 1): how many more workloads of each shape fit as allocations, fragmenting ones, a cordon
 * and a GPU that falls off the bus change the node, and GPUs allocated over healthy ones. The
 * page renews itself only on changes here (interval: 1h).
 */
static void test_shapes(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096], text[1024], *page;
	char *numa0, *frag0, *frag1;
	struct test_xpud *x;
	int port = free_port();

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	snprintf(text, sizeof(text),
		 "metrics: {listen: \"127.0.0.1:%d\", interval: 1h}\n"
		 "shapes:\n"
		 "  - {name: llm-70b, resource: nvidia.com/gpu, count: 4, numa-local: true}\n"
		 "  - {name: llm-34b, resource: nvidia.com/gpu, count: 3, numa-local: true}\n"
		 "  - {name: pair, resource: nvidia.com/gpu, count: 2}\n",
		 port);
	write_text(conf, text);
	x = test_xpud_start_nvml(root, (const char *[]){"--config", conf, NULL}, NULL);

	/* one four on NUMA node 0, a three on each node, three pairs anywhere */
	expect_fits(port, 1, 2, 3, 0);
	page = scrape(port);
	assert_families_described(page);
	promtool_check(page, strlen(page));
	free(page);

	/* NUMA node 0 taken: the three on node 1 is all that is left; 4 of 7 GPUs allocated */
	numa0 = post(x, "/v1/allocations",
		     "{\"slices\": [\"0000:18:00.0\", \"0000:2a:00.0\", \"0000:3a:00.0\", "
		     "\"0000:5d:00.0\"]}",
		     201);
	expect_fits(port, 0, 1, 1, 4.0 / 7);
	release(x, numa0);
	expect_fits(port, 1, 2, 3, 0);

	/* one GPU of node 1: six free GPUs make three pairs, but a single three */
	frag1 = post(x, "/v1/allocations",
		     "{\"resource\": \"nvidia.com/gpu\", \"count\": 1, \"device\": \"0000:9a:00.0\"}",
		     201);
	expect_fits(port, 1, 1, 3, 1.0 / 7);
	frag0 = post(x, "/v1/allocations",
		     "{\"resource\": \"nvidia.com/gpu\", \"count\": 1, \"device\": \"0000:18:00.0\"}",
		     201);
	expect_fits(port, 0, 1, 2, 2.0 / 7);
	/* one on each node instead: six free GPUs, room for a four by count, but no four fits */
	release(x, frag1);
	expect_fits(port, 0, 2, 3, 1.0 / 7);

	/* a cordon withdraws a free GPU of node 1: 6 healthy GPUs, one allocated */
	free(post(x, "/v1/cordon", "{\"device\": \"0000:ab:00.0\", \"reason\": \"fan\"}", 200));
	expect_fits(port, 0, 1, 2, 1.0 / 6);
	free(post(x, "/v1/uncordon", "{\"device\": \"0000:ab:00.0\"}", 200));
	expect_fits(port, 0, 2, 3, 1.0 / 7);

	/* a GPU that falls off the bus (XID 79): the same */
	test_kmsg_inject(x->root, "xid 0000:ba:00.0 79\n");
	expect_fits(port, 0, 1, 2, 1.0 / 6);
	page = scrape(port);
	promtool_check(page, strlen(page));
	free(page);
	release(x, frag0);
	test_xpud_free(x);
}

/* Waits up to 10 s for /v1/devices to give device @id's property @key the value @value. */
static void wait_property(struct test_xpud *x, const char *id, const char *key, const char *value)
{
	long long deadline = test_now_ms() + 10000;

	for (;;) {
		json_t *d = test_get(x, "devices", id);
		bool same = streq_ptr(test_jprop(d, key), value);

		json_decref(d);
		if (same)
			return;
		if (test_now_ms() > deadline)
			fail_msg("%s's %s is not %s after 10 s", id, key, value);
		usleep(50 * 1000);
	}
}

/* xpud on @fixture (the fake NVML for an NVIDIA one) with health probes every 200 ms and, with
 * an @interval, metrics on 127.0.0.1:@port renewed at that interval. */
static struct test_xpud *start_probed(const char *fixture, int port, const char *interval)
{
	char *root = test_fixture_new(fixture), conf[4096], text[1024];
	const char *const args[] = {"--config", conf, NULL};

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	if (interval)
		snprintf(text, sizeof(text),
			 "metrics: {listen: \"127.0.0.1:%d\", interval: %s}\n"
			 "health-interval: 200ms\n",
			 port, interval);
	else
		snprintf(text, sizeof(text), "health-interval: 200ms\n");
	write_text(conf, text);
	if (strncmp(fixture, "hgx", 3) == 0)
		return test_xpud_start_nvml(root, args, NULL);
	return test_xpud_start(root, args);
}

/*
 * NVIDIA's samples come with the helper's runs at the health probes, which metrics do not add
 * to: they follow NVML at most once per metrics interval, and are not kept without metrics (a
 * changed utilisation would otherwise be a rescan on every probe).
 */
static void test_samples_nvidia(void **state)
{
	char *page;
	int port = free_port();
	struct test_xpud *x;
	json_t *d;

	/* a metrics interval of 1 s: a new utilisation shows within seconds */
	x = start_probed("hgx-h100", port, "1s");
	free(wait_sample(port, UTIL("0000:2a:00.0"), 0.87));
	test_fake_nvml_set(x->root, "0000:2a:00.0", "utilization_gpu", json_integer(55));
	test_fake_nvml_set(x->root, "0000:2a:00.0", "ecc_corrected", json_integer(13));
	page = wait_sample(port, UTIL("0000:2a:00.0"), 0.55);
	assert_true(sample(page, RAS("0000:2a:00.0", "memory", "correctable")) == 13);
	free(page);
	test_xpud_free(x);

	/* an interval of 1 h: the answers' other readings come in, the samples stay */
	x = start_probed("hgx-h100", port, "1h");
	test_fake_nvml_set(x->root, "0000:2a:00.0", "utilization_gpu", json_integer(55));
	test_fake_nvml_set(x->root, "0000:2a:00.0", "temperature_c", json_integer(40));
	page = wait_sample(port, "xpu_device_temperature_celsius{device=\"0000:2a:00.0\"}", 40);
	assert_true(sample(page, UTIL("0000:2a:00.0")) == 0.87);
	free(page);
	test_xpud_free(x);

	/* no metrics: no samples in the inventory, the other readings as before */
	x = start_probed("hgx-h100", 0, NULL);
	test_fake_nvml_set(x->root, "0000:2a:00.0", "temperature_c", json_integer(40));
	wait_property(x, "0000:2a:00.0", "temperature_celsius", "40");
	d = test_get(x, "devices", "0000:2a:00.0");
	assert_null(test_jprop(d, "utilization_percent"));
	assert_null(test_jprop(d, "ras_errors.memory.correctable"));
	json_decref(d);
	test_xpud_free(x);
}

/*
 * amdgpu's samples from sysfs: gpu_busy_percent, mem_busy_percent and the RAS blocks' counts,
 * read at enumeration and again at a health probe once a metrics interval has gone by.
 */
static void test_samples_amdgpu(void **state)
{
	const char *fn = "sys/bus/pci/devices/0000:22:00.0/";
	int port = free_port();
	struct test_xpud *x = start_probed("mi300x", port, "1s");
	char rel[256], *page = scrape(port);
	json_t *d;

	/* the generator's GPU 1: 10 % busy, its memory 5 %; gfx has corrected an error */
	assert_true(sample(page, UTIL("0000:22:00.0")) == 0.1);
	assert_true(sample(page, MEM_UTIL("0000:22:00.0")) == 0.05);
	assert_true(sample(page, UTIL("0000:0c:00.0")) == 0);
	assert_true(sample(page, RAS("0000:22:00.0", "gfx", "correctable")) == 1);
	assert_true(sample(page, RAS("0000:22:00.0", "gfx", "uncorrectable")) == 0);
	assert_true(sample(page, RAS("0000:22:00.0", "umc", "correctable")) == 0);
	assert_int_equal(count_lines(page, "xpu_device_ras_errors_total{"), 8 * 2 * 2);
	assert_families_described(page);
	promtool_check(page, strlen(page));
	free(page);

	snprintf(rel, sizeof(rel), "%sgpu_busy_percent", fn);
	test_put_file(x->root, rel, "73\n");
	snprintf(rel, sizeof(rel), "%sras/umc_err_count", fn);
	test_put_file(x->root, rel, "ue: 0\nce: 7\n");
	page = wait_sample(port, UTIL("0000:22:00.0"), 0.73);
	assert_true(sample(page, RAS("0000:22:00.0", "umc", "correctable")) == 7);
	free(page);

	/* a reload keeps the running listener, and the samples it serves */
	snprintf(rel, sizeof(rel), "%s/xpud.yaml", x->root);
	write_text(rel, "health-interval: 200ms\n");
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, NULL), 200);
	snprintf(rel, sizeof(rel), "%sgpu_busy_percent", fn);
	test_put_file(x->root, rel, "12\n");
	free(wait_sample(port, UTIL("0000:22:00.0"), 0.12));
	test_xpud_free(x);

	/* no metrics: not read */
	x = start_probed("mi300x", 0, NULL);
	d = test_get(x, "devices", "0000:22:00.0");
	assert_non_null(test_jprop(d, "vram_used_bytes"));
	assert_null(test_jprop(d, "utilization_percent"));
	assert_null(test_jprop(d, "ras_errors.gfx.correctable"));
	json_decref(d);
	test_xpud_free(x);
}

/* Writes @conf: metrics on 127.0.0.1:@port renewed only on changes, and the shapes @shapes. */
static void write_shapes(const char *conf, int port, const char *shapes)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "metrics: {listen: \"127.0.0.1:%d\", interval: 1h}\nshapes:\n%s", port, shapes);
	write_text(conf, text);
}

/* A reload's shapes: the page's fits follow, old shapes gone, by POST /v1/reload and SIGHUP. */
static void test_shapes_reload(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096], *page;
	int port = free_port();
	struct test_xpud *x;

	/* the node's eight GPUs whole, four on each NUMA node */
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	write_shapes(conf, port,
		     "  - {name: llm-70b, resource: nvidia.com/gpu, count: 4, numa-local: true}\n");
	x = test_xpud_start(root, (const char *[]){"--config", conf, NULL});
	free(wait_sample(port, LLM70, 2));

	write_shapes(conf, port,
		     "  - {name: pair, resource: nvidia.com/gpu, count: 2}\n"
		     "  - {name: llm-34b, resource: nvidia.com/gpu, count: 3, numa-local: true}\n");
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, NULL), 200);
	page = wait_sample(port, PAIR, 4);
	assert_true(sample(page, LLM34) == 2);
	assert_true(sample(page, LLM70) == -1);
	free(page);

	/* a five on one NUMA node fits nowhere */
	write_shapes(conf, port,
		     "  - {name: pair, resource: nvidia.com/gpu, count: 5, numa-local: true}\n");
	assert_int_equal(kill(x->pid, SIGHUP), 0);
	page = wait_sample(port, PAIR, 0);
	assert_true(sample(page, LLM34) == -1);
	free(page);
	test_xpud_free(x);
}

static void test_openmetrics(void **state)
{
	int port;
	struct test_xpud *x = start_hgx(test_fixture_new("hgx-h100"), NULL, &port);
	/* what Prometheus 2 sends */
	struct reply r = http_get(port, "/metrics",
				  "application/openmetrics-text;version=1.0.0,application/"
				  "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;"
				  "q=0.5,*/*;q=0.1");

	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "\r\nContent-Type: " OPENMETRICS));
	assert_true(r.body_len > 6 && streq(r.body + r.body_len - 6, "# EOF\n"));
	assert_non_null(strstr(r.body, "# TYPE xpu_device info\n"));
	assert_non_null(strstr(r.body, "# TYPE xpu_device_temperature_celsius gauge\n"
				       "# UNIT xpu_device_temperature_celsius celsius\n"));
	assert_non_null(strstr(r.body, "\nxpu_device_info{device=\"0000:18:00.0\""));
	/* a counter's family is named without _total, its samples with it */
	assert_non_null(strstr(r.body, "# TYPE xpu_device_ras_errors counter\n"));
	assert_non_null(strstr(r.body, "\n" RAS("0000:2a:00.0", "memory", "correctable") " 12\n"));
	reply_done(&r);

	/* text/plain preferred, or no Accept at all: the text format, without # EOF */
	r = http_get(port, "/metrics",
		     "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5");
	assert_non_null(strstr(r.head, "\r\nContent-Type: text/plain; version=0.0.4"));
	assert_null(strstr(r.body, "# EOF"));
	assert_non_null(strstr(r.body, "# TYPE xpu_device_info gauge\n"));
	reply_done(&r);
	r = http_get(port, "/metrics", NULL);
	assert_non_null(strstr(r.head, "\r\nContent-Type: text/plain; version=0.0.4"));
	reply_done(&r);
	test_xpud_free(x);
}

static void test_label_escaping(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	struct test_xpud *x;
	char *page;
	int port;

	/* (NVML names are printable: the newline is tested in test-metrics-page) */
	test_fake_nvml_set(root, "0000:18:00.0", "name", json_string("H100 \"Special\" C:\\cards"));
	x = start_hgx(root, NULL, &port);
	page = scrape(port);
	if (!strstr(page, "model=\"H100 \\\"Special\\\" C:\\\\cards\""))
		fail_msg("the model is not escaped:\n%.1500s", strstr(page, "xpu_device_info"));
	assert_families_described(page);
	promtool_check(page, strlen(page));
	free(page);
	test_xpud_free(x);
}

static const char new_gpu_json[] =
    "{\"name\": \"extra\", \"pci\": [{\"address\": \"0000:e0:00.0\", \"vendor\": \"0x10de\","
    " \"device\": \"0x2330\", \"subsystem_vendor\": \"0x10de\", \"subsystem_device\": "
    "\"0x16c1\", \"class\": \"0x030200\", \"revision\": \"0xa1\", \"driver\": \"nvidia\","
    " \"numa_node\": 1, \"local_cpulist\": \"56-111\", \"nvidia\": {\"minor\": 8, \"model\":"
    " \"NVIDIA H100 80GB HBM3\", \"uuid\": \"GPU-00000000-0000-0000-0000-0000000000e0\"}}]}";

static void test_hotplug_and_backend_failure(void **state)
{
	char *root = test_fixture_new("hgx-h100"), *err = NULL, moved[4096], devices[4096];
	struct test_xpud *x;
	char *page;
	int port, conf_port;

	snprintf(moved, sizeof(moved), "%s/sys/bus/pci/devices.away", root);
	snprintf(devices, sizeof(devices), "%s/sys/bus/pci/devices", root);
	/* without the fake NVML: the PCI backend sees the GPUs in sysfs */
	{
		char conf[4096], text[256];

		conf_port = free_port();
		snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
		snprintf(text, sizeof(text), "metrics: {listen: \"127.0.0.1:%d\"}\n", conf_port);
		write_text(conf, text);
		x = test_xpud_start(root, (const char *[]){"--config", conf, NULL});
		port = conf_port;
	}
	page = scrape(port);
	assert_int_equal(count_lines(page, "xpu_device_info{"), 8);
	assert_true(sample(page, "xpu_backend_up{backend=\"pci\"}") == 1);
	free(page);

	/* a GPU appears: the next scrape has it, without waiting for the interval (15 s) */
	assert_int_equal(fixture_build(new_gpu_json, x->root, &err), 0);
	test_send_uevent(x, "add", "/devices/pci0000:e0/0000:e0:00.0", "pci");
	page = wait_sample(
	    port,
	    "xpu_device_info{device=\"0000:e0:00.0\",uuid=\"GPU-00000000-0000-0000-"
	    "0000-0000000000e0\",pci=\"0000:e0:00.0\",vendor=\"nvidia\",model=\"NVIDIA "
	    "H100 80GB HBM3\",kind=\"gpu\",numa=\"1\",driver=\"nvidia\",backend=\"pci\"}",
	    1);
	assert_int_equal(count_lines(page, "xpu_device_info{"), 9);
	free(page);

	/* the PCI bus cannot be read: the backend is down, its devices stay as last seen */
	assert_int_equal(rename(devices, moved), 0);
	test_send_uevent(x, "change", "/devices/pci0000:15/0000:18:00.0", "pci");
	page = wait_sample(port, "xpu_backend_up{backend=\"pci\"}", 0);
	assert_int_equal(count_lines(page, "xpu_device_info{"), 9);
	promtool_check(page, strlen(page));
	free(page);
	assert_int_equal(rename(moved, devices), 0);
	test_send_uevent(x, "change", "/devices/pci0000:15/0000:18:00.0", "pci");
	free(wait_sample(port, "xpu_backend_up{backend=\"pci\"}", 1));
	test_xpud_free(x);
}

/*
 * A node of 157 accelerators offered as 64 replicas each: 10,048 slices. The page stays whole
 * and parseable, and a client that hangs up in the middle of it costs xpud nothing.
 */
static char *many_accels_json(int n)
{
	size_t cap = (size_t)n * 400 + 1024, len = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	len += (size_t)snprintf(s + len, cap - len,
				"{\"name\":\"many\",\"numa_nodes\":[{\"node\":0,\"cpus\":\"0-7\"},"
				"{\"node\":1,\"cpus\":\"8-15\"}],\"pci\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(
		    s + len, cap - len,
		    "%s{\"address\":\"%04x:%02x:00.0\",\"vendor\":\"0x1da3\",\"device\":"
		    "\"0x1020\",\"class\":\"0x120000\",\"driver\":\"habanalabs\",\"numa_node\":"
		    "%d,\"class_devices\":[{\"class\":\"accel\",\"name\":\"accel%d\",\"devname\":"
		    "\"accel/accel%d\",\"major\":261,\"minor\":%d}]}",
		    i ? "," : "", 1 + i / 256, i % 256, i % 2, i, i, i);
	snprintf(s + len, cap - len, "]}");
	return s;
}

static void test_ten_thousand_slices(void **state)
{
	_cleanup_free_ char *json = many_accels_json(157);
	char *root = NULL, *err = NULL, conf[4096], text[512], *page;
	struct test_xpud *x;
	double total = 0;
	int port = free_port(), fds;

	assert_int_equal(fixture_build_temp(json, &root, &err), 0);
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	snprintf(
	    text, sizeof(text),
	    "metrics: {listen: \"127.0.0.1:%d\"}\npartitions:\n  - match: all\n    replicas: 64\n",
	    port);
	write_text(conf, text);
	x = test_xpud_start(root, (const char *[]){"--config", conf, NULL});

	page = scrape(port);
	assert_int_equal(count_lines(page, "xpu_device_info{"), 157);
	assert_int_equal(count_lines(page, "xpu_slice_healthy{"), 157 * 64);
	assert_int_equal(count_lines(page, "xpu_slice_allocated{"), 157 * 64);
	for (const char *l = strstr(page, "\nxpu_slices{"); l; l = strstr(l + 1, "\nxpu_slices{"))
		total += strtod(strchr(l, '}') + 2, NULL);
	assert_true(total == 157 * 64);
	assert_families_described(page);
	promtool_check(page, strlen(page));

	/* clients that hang up at once, or after the first bytes of the page */
	fds = test_proc_fds(x->pid);
	for (int i = 0; i < 20; i++) {
		static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
		int fd = connect_port(port);
		char buf[512];

		assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
		if (i % 2)
			assert_true(read(fd, buf, sizeof(buf)) > 0);
		/* a reset rather than an orderly close: unread data makes close() send RST */
		close(fd);
	}
	assert_int_equal(test_proc_wait_fds(x->pid, fds, 10000), fds);
	/* xpud serves on: the same page again */
	{
		char *again = scrape(port);

		assert_int_equal(count_lines(again, "xpu_slice_healthy{"), 157 * 64);
		free(again);
	}
	free(page);
	test_xpud_free(x);
}

/* A real Prometheus server scraping xpud: up is 1 and a device metric has the fixture's value. */
static pid_t start_prometheus(const char *dir, int target, int web)
{
	char conf[4096], text[1024], tsdb[4096], cfg_arg[4200], tsdb_arg[4200], web_arg[128],
	    log[4096];
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/prometheus.yml", dir);
	snprintf(text, sizeof(text),
		 "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
		 "scrape_configs:\n  - job_name: xpud\n    static_configs:\n"
		 "      - targets: ['127.0.0.1:%d']\n",
		 target);
	write_text(conf, text);
	snprintf(tsdb, sizeof(tsdb), "%s/tsdb", dir);
	snprintf(cfg_arg, sizeof(cfg_arg), "--config.file=%s", conf);
	snprintf(tsdb_arg, sizeof(tsdb_arg), "--storage.tsdb.path=%s", tsdb);
	snprintf(web_arg, sizeof(web_arg), "--web.listen-address=127.0.0.1:%d", web);
	snprintf(log, sizeof(log), "%s/prometheus.log", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execl("/usr/bin/prometheus", "prometheus", cfg_arg, tsdb_arg, web_arg,
		      "--log.level=warn", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The value of the first result of the instant query @q, or NULL (caller frees). */
static char *prometheus_query(int web, const char *q)
{
	char path[512];
	struct reply r;
	json_t *doc, *v;
	char *value = NULL;

	snprintf(path, sizeof(path), "/api/v1/query?query=%s", q);
	{
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_port = htons((uint16_t)web),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;

		if (fd >= 0)
			close(fd);
		if (!ok)
			return NULL; /* not listening yet */
	}
	r = http_get(web, path, NULL);
	doc = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
	v = json_array_get(
	    json_object_get(
		json_array_get(json_object_get(json_object_get(doc, "data"), "result"), 0),
		"value"),
	    1);
	if (json_is_string(v))
		value = strdup(json_string_value(v));
	json_decref(doc);
	reply_done(&r);
	return value;
}

static char *prometheus_wait(int web, const char *q, const char *want)
{
	long long deadline = test_now_ms() + 60000;
	char *v = NULL;

	while (test_now_ms() < deadline) {
		free(v);
		v = prometheus_query(web, q);
		if (v && streq(v, want))
			return v;
		usleep(200 * 1000);
	}
	return v;
}

static void test_prometheus_scrapes(void **state)
{
	char dir[] = "/tmp/xpu-prometheus-XXXXXX", cmd[4200];
	struct test_xpud *x;
	int port, web = free_port(), status;
	pid_t prom;
	char *v;

	if (access("/usr/bin/prometheus", X_OK) != 0) {
		print_message("prometheus is not installed (tests/deps.sh test)\n");
		skip();
	}
	x = start_hgx(test_fixture_new("hgx-h100"), NULL, &port);
	assert_non_null(mkdtemp(dir));
	prom = start_prometheus(dir, port, web);

	v = prometheus_wait(web, "up%7Bjob%3D%22xpud%22%7D", "1");
	if (!v || !streq(v, "1"))
		fail_msg("Prometheus's up for xpud is %s after 60 s", v ?: "(no answer)");
	free(v);
	v = prometheus_wait(
	    web, "xpu_device_temperature_celsius%7Bdevice%3D%220000%3Aab%3A00.0%22%7D", "36");
	if (!v || !streq(v, "36"))
		fail_msg("Prometheus has the temperature of 0000:ab:00.0 as %s, not 36",
			 v ?: "nothing");
	free(v);
	v = prometheus_wait(web, "xpu_slices%7Bresource%3D%22nvidia.com%2Fmig-1g.10gb%22%7D", "7");
	assert_non_null(v);
	assert_string_equal(v, "7");
	free(v);

	kill(prom, SIGTERM);
	assert_int_equal(waitpid(prom, &status, 0), prom);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	test_xpud_free(x);
}

/* Off unless configured: no listener. A Unix socket works as well as TCP. */
static void test_unix_listener(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096], text[4200], sock[4096];
	struct test_xpud *x;
	char *out;

	snprintf(sock, sizeof(sock), "%s/run/metrics.sock", root);
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	snprintf(text, sizeof(text), "metrics: {listen: \"unix:%s\"}\n", sock);
	write_text(conf, text);
	x = test_xpud_start(root, (const char *[]){"--config", conf, NULL});
	out = test_raw_exchange(sock, "GET /metrics HTTP/1.0\r\n\r\n", 25, 5000);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(out, "\nxpu_device_info{device=\"0000:18:00.0\""));
	free(out);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hgx_page),
	    cmocka_unit_test(test_shapes),
	    cmocka_unit_test(test_shapes_reload),
	    cmocka_unit_test(test_samples_nvidia),
	    cmocka_unit_test(test_samples_amdgpu),
	    cmocka_unit_test(test_openmetrics),
	    cmocka_unit_test(test_label_escaping),
	    cmocka_unit_test(test_hotplug_and_backend_failure),
	    cmocka_unit_test(test_ten_thousand_slices),
	    cmocka_unit_test(test_unix_listener),
	    cmocka_unit_test(test_prometheus_scrapes),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
