// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Soak: xpud on the HGX fixture with kubelet's device plugin directory, under a steady mixed
 * load for a while (300 s by default; the first argument or XPU_SOAK_SECONDS sets it):
 *   - kubelet: GetDevicePluginOptions and Allocate of one GPU after another over gRPC, and its
 *     checkpoint rewritten so that xpud records each grant and releases it again;
 *   - the local API: grant attempts (refused: kubelet owns these GPUs), fit questions,
 *     devices, capacity and allocations read;
 *   - event streams opened, read a while and closed, one after another;
 *   - rescans, and uevents for a GPU.
 * Every second it samples xpud's RSS, descriptors and CPU time from /proc and prints them every
 * ten. After the warm-up (the first 40 %) the load pauses and the descriptors xpud holds idle
 * are counted; at the end they must be the same, and the RSS of the last minute may exceed that
 * of the minute after the warm-up by XPU_SOAK_RSS_KIB at most (16 MiB by default): a bound on
 * resources, not on time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "kube/grpc.h"
#include "procstat.h"
#include "testutil.h"
#include "xpu/client.h"

enum { W_KUBELET, W_API, W_EVENTS, W_RESCAN, N_WORKERS };
static const char *const worker_name[N_WORKERS] = {"kubelet", "api", "events", "rescan"};

/* Shared with the workers (MAP_SHARED): the pause handshake and their counters. */
struct shared {
	volatile int pause; /* set by the parent: finish the step, close, wait */
	volatile int stop;
	volatile int paused[N_WORKERS];
	volatile long ops[N_WORKERS]; /* answered requests */
	volatile long errors[N_WORKERS];
};

static struct shared *sh;
static struct test_xpud *x;
static unsigned duration_s = 300;
static char gpus[8][32];
static size_t n_gpus;
static char kubelet_dir[4200];

/* Returns true when told to stop; blocks while paused. */
static bool checkpoint(int w)
{
	while (sh->pause && !sh->stop) {
		sh->paused[w] = 1;
		usleep(20000);
	}
	sh->paused[w] = 0;
	return sh->stop;
}

static int request(const char *method, const char *path, const char *body, json_t **ret)
{
	struct xpu_client *c = NULL;
	json_t *req = body ? json_loads(body, 0, NULL) : NULL;
	int status = 0, r;

	r = xpu_client_new(x->socket, &c);
	if (r >= 0)
		r = xpu_client_request(c, method, path, req, &status, ret);
	xpu_client_free(c);
	json_decref(req);
	return r < 0 ? r : status;
}

static void count(int w, bool ok)
{
	if (ok)
		sh->ops[w]++;
	else
		sh->errors[w]++;
}

/* ---- kubelet ------------------------------------------------------------------------------ */

struct call {
	bool done;
	int status;
};

static void on_reply(int status, const char *message, const uint8_t *reply, size_t len,
		     void *userdata)
{
	struct call *c = userdata;

	c->done = true;
	c->status = status;
}

static int grpc_call(sd_event *e, const char *socket, const char *method, const uint8_t *msg,
		     size_t len)
{
	struct grpc_client_call *cc = NULL;
	struct call c = {};
	int r;

	r = grpc_client_call_new(e, socket, method, msg, len, 5 * 1000000ULL, on_reply, &c, &cc);
	if (r < 0)
		return r;
	while (!c.done)
		if (sd_event_run(e, UINT64_MAX) < 0)
			return -EIO;
	return c.status;
}

static void write_checkpoint(const char *device, unsigned serial)
{
	char path[4300], tmp[4400], text[512];
	int fd;

	if (device)
		snprintf(
		    text, sizeof(text),
		    "{\"Data\":{\"PodDeviceEntries\":[{\"PodUID\":\"soak\",\"ContainerName\":"
		    "\"c\",\"ResourceName\":\"nvidia.com/gpu\",\"DeviceIDs\":{\"0\":[\"%s\"]}}],"
		    "\"RegisteredDevices\":{}},\"Checksum\":%u}",
		    device, serial);
	else
		snprintf(text, sizeof(text),
			 "{\"Data\":{\"PodDeviceEntries\":[],\"RegisteredDevices\":{}},"
			 "\"Checksum\":%u}",
			 serial);
	snprintf(path, sizeof(path), "%s/kubelet_internal_checkpoint", kubelet_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0) {
		/* counted as an error by the next Allocate, if it matters */
	}
	close(fd);
	(void)rename(tmp, path);
}

static void kubelet_main(void)
{
	char plugin[4400];
	sd_event *e = NULL;
	unsigned serial = 0;

	snprintf(plugin, sizeof(plugin), "%s/xpud-nvidia.com_gpu.sock", kubelet_dir);
	if (sd_event_new(&e) < 0)
		_exit(1);
	for (size_t i = 0; !checkpoint(W_KUBELET); i++) {
		const char *id = gpus[i % n_gpus];
		uint8_t msg[96];
		size_t n = strlen(id);
		int st;

		st = grpc_call(e, plugin, "/v1beta1.DevicePlugin/GetDevicePluginOptions", msg, 0);
		count(W_KUBELET, st == 0);
		/* AllocateRequest { container_requests { devices_ids: id } } */
		msg[0] = 0x0a;
		msg[1] = (uint8_t)(n + 2);
		msg[2] = 0x0a;
		msg[3] = (uint8_t)n;
		memcpy(msg + 4, id, n);
		st = grpc_call(e, plugin, "/v1beta1.DevicePlugin/Allocate", msg, n + 4);
		count(W_KUBELET, st == 0);
		/* the pod runs a while, then is gone */
		write_checkpoint(id, ++serial);
		usleep(100000);
		write_checkpoint(NULL, ++serial);
		usleep(100000);
	}
	sd_event_unref(e);
	_exit(0);
}

/* ---- local API, events, rescans ----------------------------------------------------------- */

static void api_main(void)
{
	static const char *const reads[] = {"/v1/devices", "/v1/capacity", "/v1/allocations",
					    "/v1/slices",  "/v1/health",   "/v1/plan"};

	for (size_t i = 0; !checkpoint(W_API); i++) {
		int st = request("GET", reads[i % 6], NULL, NULL);

		count(W_API, st == 200);
		st = request("POST", "/v1/fit", "{\"resource\": \"nvidia.com/gpu\", \"count\": 2}",
			     NULL);
		count(W_API, st == 200);
		/* kubelet owns nvidia.com/gpu here: the local grant is refused, clearly */
		st = request("POST", "/v1/allocations", "{\"resource\": \"nvidia.com/gpu\"}", NULL);
		count(W_API, st == 409);
		usleep(20000);
	}
	_exit(0);
}

static void events_main(void)
{
	static const char req[] = "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	strcpy(sun.sun_path, x->socket);
	while (!checkpoint(W_EVENTS)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool ok = false;

		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
		    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
			count(W_EVENTS, false);
			if (fd >= 0)
				close(fd);
			usleep(100000);
			continue;
		}
		/* read what comes for two seconds, then hang up */
		for (long long end = test_now_ms() + 2000; test_now_ms() < end && !sh->pause;) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			char buf[8192];
			ssize_t k;

			if (poll(&p, 1, 100) <= 0)
				continue;
			k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (k <= 0)
				break;
			ok = ok || strncmp(buf, "HTTP/1.1 200", 12) == 0;
		}
		close(fd);
		count(W_EVENTS, ok);
	}
	_exit(0);
}

static void rescan_main(void)
{
	for (size_t i = 0; !checkpoint(W_RESCAN); i++) {
		int st = request("POST", "/v1/rescan", NULL, NULL);

		count(W_RESCAN, st == 200);
		test_send_uevent(x, "change", "/devices/pci0000:17/0000:17:00.0/0000:18:00.0",
				 "pci");
		count(W_RESCAN, true);
		usleep(500000);
	}
	_exit(0);
}

/* ---- the run ------------------------------------------------------------------------------ */

static void pause_load(void)
{
	sh->pause = 1;
	for (;;) {
		int n = 0;

		for (int w = 0; w < N_WORKERS; w++)
			n += sh->paused[w];
		if (n == N_WORKERS)
			break;
		usleep(20000);
	}
}

static void resume_load(void)
{
	sh->pause = 0;
}

/* The descriptors xpud holds idle: the count steady for two seconds (60 s at most). */
static int idle_fds(void)
{
	int n = test_proc_fds(x->pid), same = 0;

	for (int i = 0; i < 300 && same < 4; i++) {
		int m;

		usleep(500000);
		m = test_proc_fds(x->pid);
		same = m == n ? same + 1 : 0;
		n = m;
	}
	return n;
}

struct sample {
	long rss_kib;
	int fds;
	long long ticks;
};

static void test_soak(void **state)
{
	char *root = test_fixture_new("hgx-h100"), cmd[4300];
	unsigned warmup = duration_s * 2 / 5, window = duration_s / 5;
	struct sample *s = calloc(duration_s + 1, sizeof(*s));
	long hz = sysconf(_SC_CLK_TCK);
	pid_t workers[N_WORKERS];
	int fds_base, fds_end, status;
	long rss_early = 0, rss_late = 0, bound = 16 * 1024;
	json_t *doc = NULL, *sl;
	char *fd_list;
	size_t i;

	assert_non_null(s);
	if (getenv("XPU_SOAK_RSS_KIB"))
		bound = strtol(getenv("XPU_SOAK_RSS_KIB"), NULL, 10);
	snprintf(kubelet_dir, sizeof(kubelet_dir), "%s/var/lib/kubelet/device-plugins", root);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", kubelet_dir);
	assert_int_equal(system(cmd), 0);
	/* info, not debug: an hour of debug lines outgrows what the log checks read */
	x = test_xpud_start_nvml(root, (const char *[]){ "--log-level", "info", NULL }, NULL);

	/* the whole GPUs kubelet will be given */
	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	json_array_foreach (json_object_get(doc, "slices"), i, sl)
		if (n_gpus < 8 && json_is_string(json_object_get(sl, "resource")) &&
		    strcmp(json_string_value(json_object_get(sl, "resource")), "nvidia.com/gpu") ==
			0)
			snprintf(gpus[n_gpus++], sizeof(gpus[0]), "%s",
				 json_string_value(json_object_get(sl, "id")));
	json_decref(doc);
	assert_true(n_gpus > 0);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	signal(SIGPIPE, SIG_IGN);
	for (int w = 0; w < N_WORKERS; w++) {
		workers[w] = fork();
		assert_true(workers[w] >= 0);
		if (workers[w] == 0) {
			void (*mains[N_WORKERS])(void) = {kubelet_main, api_main, events_main,
							  rescan_main};

			mains[w]();
			_exit(0);
		}
	}

	print_message("soak: %u s, warm-up %u s, xpud pid %d, %zu GPUs for kubelet\n", duration_s,
		      warmup, (int)x->pid, n_gpus);
	print_message(
	    "   t(s)  rss(KiB)  fds  cpu(%%)   kubelet      api   events   rescan  errors\n");
	fds_base = -1;
	for (unsigned t = 0; t <= duration_s; t++) {
		long long next = test_now_ms() + 1000;

		s[t].rss_kib = test_proc_rss_kib(x->pid);
		s[t].fds = test_proc_fds(x->pid);
		s[t].ticks = test_proc_cpu_ticks(x->pid);
		assert_true(s[t].rss_kib > 0); /* xpud is alive */
		if (t % 10 == 0 && t > 0) {
			long errs = 0;

			for (int w = 0; w < N_WORKERS; w++)
				errs += sh->errors[w];
			print_message("%7u %9ld %4d %7.1f %9ld %8ld %8ld %8ld %7ld\n", t,
				      s[t].rss_kib, s[t].fds,
				      100.0 * (double)(s[t].ticks - s[t - 10].ticks) / (double)hz /
					  10.0,
				      sh->ops[W_KUBELET], sh->ops[W_API], sh->ops[W_EVENTS],
				      sh->ops[W_RESCAN], errs);
		}
		if (t == warmup) {
			pause_load();
			fds_base = idle_fds();
			print_message("after the warm-up, idle: %d descriptors\n", fds_base);
			resume_load();
		}
		while (test_now_ms() < next)
			usleep(50000);
	}
	pause_load();
	fds_end = idle_fds();
	fd_list = test_proc_fd_list(x->pid);
	sh->stop = 1;
	for (int w = 0; w < N_WORKERS; w++) {
		assert_int_equal(waitpid(workers[w], &status, 0), workers[w]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}

	for (unsigned t = warmup; t < warmup + window; t++)
		rss_early = s[t].rss_kib > rss_early ? s[t].rss_kib : rss_early;
	for (unsigned t = duration_s - window; t <= duration_s; t++)
		rss_late = s[t].rss_kib > rss_late ? s[t].rss_kib : rss_late;
	print_message("RSS: %ld KiB at start, peak %ld KiB in %u-%u s, peak %ld KiB in %u-%u s "
		      "(growth %ld KiB, bound %ld)\n",
		      s[0].rss_kib, rss_early, warmup, warmup + window, rss_late,
		      duration_s - window, duration_s, rss_late - rss_early, bound);
	print_message("descriptors idle: %d after the warm-up, %d at the end\n", fds_base, fds_end);
	print_message("CPU: %.1f %% on average after the warm-up\n",
		      100.0 * (double)(s[duration_s].ticks - s[warmup].ticks) / (double)hz /
			  (double)(duration_s - warmup));
	for (int w = 0; w < N_WORKERS; w++)
		print_message("%s: %ld answered, %ld errors\n", worker_name[w], sh->ops[w],
			      sh->errors[w]);
	/* kubelet's grants were recorded and released with its checkpoint: none is left */
	print_message("grants recorded for kubelet: %u, released: %u\n",
		      test_xpud_log_count(x, "to pod kubelet"),
		      test_xpud_log_count(x, " released."));
	for (int k = 0; k < 100 && test_capacity(x, "nvidia.com/gpu", "allocated") != 0; i++)
		usleep(100000);
	assert_int_equal(test_capacity(x, "nvidia.com/gpu", "allocated"), 0);
	assert_true(test_xpud_log_count(x, " released.") > 0);
	for (int w = 0; w < N_WORKERS; w++) {
		assert_true(sh->ops[w] > 0);
		if (sh->errors[w] > sh->ops[w] / 100)
			fail_msg("%s: %ld errors in %ld requests", worker_name[w], sh->errors[w],
				 sh->ops[w]);
	}
	if (fds_end != fds_base)
		fail_msg("xpud holds %d descriptors idle at the end, %d after the warm-up:\n%s",
			 fds_end, fds_base, fd_list);
	free(fd_list);
	if (rss_late - rss_early > bound)
		fail_msg("xpud's RSS grew by %ld KiB after the warm-up (bound %ld KiB)",
			 rss_late - rss_early, bound);
	/* and it stops cleanly: no leak under the sanitizers */
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	munmap(sh, sizeof(*sh));
	free(s);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_soak),
	};
	const char *d = argc > 1 ? argv[1] : getenv("XPU_SOAK_SECONDS");

	if (d && *d) {
		duration_s = (unsigned)strtoul(d, NULL, 10);
		if (duration_s < 10) {
			fprintf(stderr, "a soak lasts 10 s at least\n");
			return 2;
		}
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
