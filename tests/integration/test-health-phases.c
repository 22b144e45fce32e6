// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The health state machine end to end, through the real xpud: a GPU whose probes fail and then
 * answer walks healthy -> suspect -> unhealthy -> probation -> healthy on /v1/events, with the
 * phase shown by /v1/devices and xpuctl; a GPU that flaps makes a bounded number of events and
 * is not served again until a probation period after its last failure; with the fake NVML, one
 * GPU's trouble leaves the others alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "testutil.h"

#define GPU "0000:18:00.0"

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static long long now_realtime_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Replaces a file at once (a probe never reads it half written). */
static void replace_file(const char *path, const void *data, size_t len)
{
	char tmp[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(rename(tmp, path), 0);
}

/* A GPU's PCI config space: its saved bytes, and all-ones (what a device off the bus reads). */
struct cfgspace {
	char path[4096];
	char *alive;
	size_t len;
};

static void cfgspace_open(struct cfgspace *c, const char *root, const char *addr)
{
	static const unsigned char h100[4] = { 0xde, 0x10, 0x30, 0x23 };
	int fd;
	ssize_t k;

	snprintf(c->path, sizeof(c->path), "%s/sys/bus/pci/devices/%s/config", root, addr);
	c->alive = calloc(1, 4096);
	assert_non_null(c->alive);
	fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* the node description has none: an H100's first bytes */
		memcpy(c->alive, h100, sizeof(h100));
		c->len = 64;
		return;
	}
	k = read(fd, c->alive, 4096);
	assert_true(k >= 4);
	c->len = (size_t)k;
	close(fd);
}

static void cfgspace_set(const struct cfgspace *c, bool alive)
{
	static char dead[4096];

	if (alive) {
		replace_file(c->path, c->alive, c->len);
		return;
	}
	memset(dead, 0xff, sizeof(dead));
	replace_file(c->path, dead, c->len);
}

/* The next health-changed event of @id (10 s at most), checked against @from -> @to on @signal. */
static json_t *expect_transition(struct test_stream *s, const char *id, const char *from,
				 const char *to, const char *signal)
{
	char dev[128];
	json_t *ev, *tr;

	snprintf(dev, sizeof(dev), "\"device_id\":\"%s\"", id);
	ev = test_stream_next(s, (const char *const[]){ "\"type\":\"health-changed\"", dev, NULL },
			      10000);
	if (!ev)
		fail_msg("no health-changed event for %s (%s -> %s) within 10 s", id, from, to);
	tr = json_object_get(ev, "transition");
	assert_non_null(tr);
	assert_string_equal(str(tr, "from"), from);
	assert_string_equal(str(tr, "to"), to);
	assert_string_equal(str(tr, "signal"), signal);
	/* the event's device shows where the machine stands now */
	assert_string_equal(str(json_object_get(json_object_get(ev, "device"), "health"), "phase"),
			    to);
	return ev;
}

/* GET /v1/devices/@id's "health" (a new reference). */
static json_t *device_health(const struct test_xpud *x, const char *id)
{
	char path[128];
	json_t *doc = NULL, *h;

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	assert_int_equal(test_request(x, "GET", path, &doc), 200);
	h = json_incref(json_object_get(doc, "health"));
	json_decref(doc);
	assert_non_null(h);
	return h;
}

/* How many devices of @resource /v1/capacity counts healthy (served). */
static long long healthy_capacity(const struct test_xpud *x, const char *resource)
{
	json_t *doc = NULL, *r;
	long long n = -1;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	json_array_foreach(json_object_get(doc, "resources"), i, r)
		if (strcmp(str(r, "name"), resource) == 0)
			n = num(r, "healthy");
	json_decref(doc);
	assert_true(n >= 0);
	return n;
}

/* xpud on a hgx-h100 fixture with a configuration, following its events. */
struct rig {
	struct test_xpud *x;
	struct test_stream *s;
	struct cfgspace cfg; /* of the GPU the test breaks */
	long long total;     /* healthy nvidia.com/gpu at the start */
};

static void rig_start(struct rig *r, const char *config, const char *gpu, bool nvml)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096];
	const char *args[] = { "--config", conf, NULL };
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	f = fopen(conf, "we");
	assert_non_null(f);
	fputs(config, f);
	fclose(f);
	cfgspace_open(&r->cfg, root, gpu);
	r->x = nvml ? test_xpud_start_nvml(root, args, NULL) : test_xpud_start(root, args);
	if (nvml) {
		/* the CUDA facts arrive after READY with a rescan (the last GPU's change ends it);
		 * a rescan that finds a GPU broken makes it unhealthy at once, not through probes */
		for (long long end = test_now_ms() + 10000;
		     !test_xpud_log_contains(r->x, "Device 0000:db:00.0 changed.") &&
		     test_now_ms() < end;)
			usleep(50 * 1000);
		assert_true(test_xpud_log_contains(r->x, "Device 0000:db:00.0 changed."));
	}
	r->s = test_stream_open(r->x->socket);
	assert_true(test_stream_wait(r->s, (const char *const[]){ "\"subscribed\"", NULL },
				     10000) >= 0);
	r->total = healthy_capacity(r->x, "nvidia.com/gpu");
}

static void rig_stop(struct rig *r)
{
	test_stream_close(r->s);
	free(r->cfg.alive);
	assert_int_equal(test_xpud_stop(r->x), 0);
	test_xpud_free(r->x);
}

static void test_phases_end_to_end(void **state)
{
	struct rig r;
	struct test_stream *s;
	struct test_xpud *x;
	char *out = NULL;
	json_t *ev, *h;
	long long total, probation_since;

	rig_start(&r, "health-interval: 100ms\nhealth-suspect-after: 3\nhealth-probation: 3s\n",
		  GPU, false);
	x = r.x;
	s = r.s;
	total = r.total;
	h = device_health(x, GPU);
	assert_string_equal(str(h, "phase"), "healthy");
	assert_true(json_is_null(json_object_get(h, "until_usec")));
	json_decref(h);

	/* the GPU falls off the bus: one failed probe is suspect, still served */
	cfgspace_set(&r.cfg, false);
	ev = expect_transition(s, GPU, "healthy", "suspect", "probe-failed");
	assert_non_null(strstr(str(json_object_get(ev, "transition"), "reason"),
			       "not responding on the PCIe bus"));
	assert_string_equal(str(json_object_get(json_object_get(ev, "device"), "health"), "state"),
			    "healthy");
	json_decref(ev);
	/* the third failure withdraws it */
	json_decref(expect_transition(s, GPU, "suspect", "unhealthy", "probe-failed"));
	h = device_health(x, GPU);
	assert_string_equal(str(h, "state"), "unhealthy");
	assert_string_equal(str(h, "phase"), "unhealthy");
	assert_string_equal(str(h, "signal"), "probe-failed");
	assert_non_null(strstr(str(h, "phase_reason"), "not responding on the PCIe bus"));
	json_decref(h);
	assert_int_equal(healthy_capacity(x, "nvidia.com/gpu"), total - 1);

	/* it answers again: on probation, still not served, until three seconds have passed */
	cfgspace_set(&r.cfg, true);
	json_decref(expect_transition(s, GPU, "unhealthy", "probation", "probe-ok"));
	h = device_health(x, GPU);
	assert_string_equal(str(h, "state"), "unhealthy");
	assert_string_equal(str(h, "phase"), "probation");
	assert_string_equal(str(h, "signal"), "probe-ok");
	assert_non_null(strstr(str(h, "reason"), "on probation"));
	probation_since = num(h, "since_usec");
	assert_true(num(h, "until_usec") == probation_since + 3000000);
	json_decref(h);
	{
		/* xpuctl shows the phase in the list and in the device's details */
		const char *list[] = { "devices", NULL }, *one[] = { "device", GPU, NULL };

		assert_int_equal(test_xpuctl(x->socket, list, &out), 0);
		assert_non_null(strstr(out, "PHASE"));
		assert_non_null(strstr(out, "probation"));
		free(out);
		assert_int_equal(test_xpuctl(x->socket, one, &out), 0);
		assert_non_null(strstr(out, "probation since"));
		assert_non_null(strstr(out, "until"));
		free(out);
	}
	ev = expect_transition(s, GPU, "probation", "healthy", "probe-ok");
	/* never before the period is over */
	assert_true(num(ev, "time_usec") >= probation_since + 3000000);
	assert_string_equal(str(json_object_get(json_object_get(ev, "device"), "health"), "state"),
			    "healthy");
	json_decref(ev);
	h = device_health(x, GPU);
	assert_string_equal(str(h, "phase"), "healthy");
	assert_true(json_is_null(json_object_get(h, "phase_reason")));
	json_decref(h);
	assert_int_equal(healthy_capacity(x, "nvidia.com/gpu"), total);
	assert_true(test_xpud_log_contains(x, "is healthy again"));

	rig_stop(&r);
}

/* How many health-changed events of @id the stream holds up to its probation -> healthy one. */
static unsigned count_until_healthy(struct test_stream *s, const char *id, json_t **ret_last)
{
	char dev[128];
	unsigned n = 0;

	snprintf(dev, sizeof(dev), "\"device_id\":\"%s\"", id);
	for (;;) {
		json_t *ev = test_stream_next(
			s, (const char *const[]){ "\"type\":\"health-changed\"", dev, NULL }, 20000);
		const char *to, *from;

		if (!ev)
			fail_msg("%s never became healthy again (%u events)", id, n);
		n++;
		to = str(json_object_get(ev, "transition"), "to");
		from = str(json_object_get(ev, "transition"), "from");
		if (to && from && strcmp(from, "probation") == 0 && strcmp(to, "healthy") == 0) {
			*ret_last = ev;
			return n;
		}
		json_decref(ev);
	}
}

static void test_flapping(void **state)
{
	long long total, last_failure = 0, max_until = 0;
	bool withdrawn = false;
	struct rig r;
	struct test_xpud *x;
	json_t *ev;
	unsigned n;

	/*
	 * Probes come every 100 to 200 ms (the timer's accuracy): a dead spell of 250 ms is seen
	 * by one probe at least and three at most, never the five in a row of a relapse.
	 */
	rig_start(&r, "health-interval: 100ms\nhealth-suspect-after: 5\nhealth-probation: 2s\n",
		  GPU, false);
	x = r.x;
	total = r.total;

	/* 20 flaps: off the bus for 250 ms, back for 250 ms */
	for (int i = 0; i < 20; i++) {
		json_t *h;

		last_failure = now_realtime_usec();
		cfgspace_set(&r.cfg, false);
		usleep(250 * 1000);
		cfgspace_set(&r.cfg, true);
		usleep(250 * 1000);
		h = device_health(x, GPU);
		if (strcmp(str(h, "phase"), "unhealthy") == 0 ||
		    strcmp(str(h, "phase"), "probation") == 0)
			withdrawn = true;
		if (strcmp(str(h, "phase"), "probation") == 0)
			max_until = MAX(max_until, num(h, "until_usec"));
		json_decref(h);
		/* once withdrawn, never offered again while it flaps: neither to the API's
		 * capacity nor, through the same inventory, to kubelet */
		if (withdrawn)
			assert_int_equal(healthy_capacity(x, "nvidia.com/gpu"), total - 1);
	}
	assert_true(withdrawn);

	/* healthy -> suspect -> unhealthy -> probation -> healthy: 4, not one per flap */
	n = count_until_healthy(r.s, GPU, &ev);
	print_message("%u health-changed events for 20 flaps\n", n);
	assert_true(n <= 4);
	/* served again only once the probation after its last failure was over */
	assert_true(num(ev, "time_usec") >= max_until);
	assert_true(num(ev, "time_usec") >= last_failure + 1000000);
	json_decref(ev);
	assert_int_equal(healthy_capacity(x, "nvidia.com/gpu"), total);

	rig_stop(&r);
}

/*
 * With the fake NVML owning the GPUs: one GPU's probe fails (its config space reads all-ones)
 * and recovers through probation; no other GPU changes phase or leaves the capacity.
 */
static void test_nvml_one_gpu(void **state)
{
	json_t *doc = NULL, *d, *before = NULL;
	struct rig r;
	struct test_stream *s;
	struct test_xpud *x;
	long long total;
	size_t i;

	rig_start(&r,
		  "health-interval: 100ms\nhealth-suspect-after: 2\nhealth-probation: 500ms\n",
		  "0000:2a:00.0", true);
	x = r.x;
	s = r.s;
	total = r.total;
	assert_int_equal(test_request(x, "GET", "/v1/devices", &before), 200);

	cfgspace_set(&r.cfg, false);
	json_decref(expect_transition(s, "0000:2a:00.0", "healthy", "suspect", "probe-failed"));
	json_decref(expect_transition(s, "0000:2a:00.0", "suspect", "unhealthy", "probe-failed"));
	assert_int_equal(healthy_capacity(x, "nvidia.com/gpu"), total - 1);
	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	json_array_foreach(json_object_get(doc, "devices"), i, d) {
		const json_t *h = json_object_get(d, "health");

		assert_string_equal(str(d, "backend"), "nvidia");
		if (strcmp(str(d, "id"), "0000:2a:00.0") == 0)
			continue;
		assert_string_equal(str(h, "phase"), "healthy");
		assert_string_equal(str(h, "state"), "healthy");
	}
	json_decref(doc);

	cfgspace_set(&r.cfg, true);
	json_decref(expect_transition(s, "0000:2a:00.0", "unhealthy", "probation", "probe-ok"));
	json_decref(expect_transition(s, "0000:2a:00.0", "probation", "healthy", "probe-ok"));
	assert_int_equal(healthy_capacity(x, "nvidia.com/gpu"), total);

	/* the other GPUs never changed phase: healthy since they were first seen */
	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	json_array_foreach(json_object_get(doc, "devices"), i, d) {
		const json_t *was = json_array_get(json_object_get(before, "devices"), i);

		assert_string_equal(str(d, "id"), str(was, "id"));
		if (strcmp(str(d, "id"), "0000:2a:00.0") == 0)
			continue;
		assert_true(num(json_object_get(d, "health"), "since_usec") ==
			    num(json_object_get(was, "health"), "since_usec"));
	}
	json_decref(doc);
	json_decref(before);
	rig_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phases_end_to_end),
		cmocka_unit_test(test_flapping),
		cmocka_unit_test(test_nvml_one_gpu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
