// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * XIDs from the kernel log, end to end: every recorded XID format of
 * tests/fixtures/kmsg/xid-lines.txt, written into the fixture's dev/kmsg with the address (and
 * MIG instance) of a GPU of the node, reaches that GPU or MIG device with the action the XID
 * table gives, as /v1/devices and /v1/slices show it; a GPU the node does not have, garbled
 * records and lines change nothing. A kernel log xpud cannot read leaves the GPUs listed, and
 * /v1/backends says why XIDs are not read.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "backends/nvidia-xid.h"
#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

#define MIG_GPU "0000:db:00.0"
#define N_WHOLE 7
static const char *const whole[N_WHOLE] = {
	"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
	"0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0",
};

/* What a sample of xid-lines.txt says, and its record to send. */
struct sample {
	unsigned lineno;
	char kind; /* 'x' an XID, 'n' another line, 'b' an XID line that cannot be read, 'r' a
		    * record that cannot be read */
	char record[2048];
	size_t len;
	unsigned xid;
	int gi, ci; /* -1: not named */
	char action[32];
};

struct node {
	char *root;
	struct test_xpud *x;
	struct test_stream *s;
	size_t fresh; /* whole[fresh..] have had no fault since xpud started */
};

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static char *mig_uuid(unsigned gi, char buf[static 48])
{
	snprintf(buf, 48, "MIG-00000000-0000-5000-8000-0000000000%02u", gi);
	return buf;
}

/* " key=VALUE" of the sample's expectation (not the first field, pci=). */
static void expect(const char *e, const char *key, char *buf, size_t size)
{
	char k[32];
	const char *p;

	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(e, k);
	assert_non_null(p);
	p += strlen(k);
	snprintf(buf, size, "%.*s", (int)strcspn(p, " "), p);
}

static int instance(const char *e, const char *key)
{
	char v[16];

	expect(e, key, v, sizeof(v));
	return streq(v, "-") ? -1 : atoi(v);
}

static size_t read_samples(struct sample *out, size_t max)
{
	struct test_xid_lines *t = test_xid_lines_open();
	struct test_xid_sample s;
	size_t n = 0;

	while (test_xid_lines_next(t, &s)) {
		struct sample *o = &out[n++];
		char v[16];

		assert_true(n <= max && s.len < sizeof(o->record));
		*o = (struct sample){ .lineno = s.lineno, .len = s.len, .gi = -1, .ci = -1 };
		memcpy(o->record, s.record, s.len);
		if (streq(s.expected, "bad-record") || streq(s.expected, "not-xid") ||
		    streq(s.expected, "bad-xid")) {
			o->kind = streq(s.expected, "bad-record") ? 'r'
				  : streq(s.expected, "not-xid")  ? 'n'
								   : 'b';
			continue;
		}
		o->kind = 'x';
		expect(s.expected, "xid", v, sizeof(v));
		o->xid = (unsigned)atoi(v);
		o->gi = instance(s.expected, "gi");
		o->ci = instance(s.expected, "ci");
		expect(s.expected, "action", o->action, sizeof(o->action));
	}
	test_xid_lines_close(t);
	return n;
}

/* Replaces @len bytes at @at of @s (NUL-terminated, room for @size) with @with. */
static void splice(char *s, size_t size, char *at, size_t len, const char *with)
{
	size_t tail = strlen(at + len);

	assert_true(strlen(s) - len + strlen(with) < size);
	memmove(at + strlen(with), at + len, tail + 1);
	memcpy(at, with, strlen(with));
}

/*
 * The sample's record as @root's kernel log would carry it now: the next sequence number, a
 * timestamp ten seconds after the last (no two samples are one XID's repeats), and, when given,
 * another GPU (@gpu), GPU instance (@gi >= 0, the compute instance then 0) and XID (@xid > 0).
 * The rest (flags, extra header fields, dictionary, the driver's words) stays as recorded.
 */
static void send_sample(const struct node *nd, const struct sample *smp, const char *gpu, int gi,
			int xid)
{
	unsigned long long seq = test_kmsg_next_seq(nd->root);
	char rec[4096], head[64], num[16], *p, *q;
	size_t prio;

	assert_true(smp->len + 1 < sizeof(rec));
	memcpy(rec, smp->record, smp->len);
	rec[smp->len] = '\0';
	/* PRIORITY,SEQUENCE,TIMESTAMP: the priority stays */
	prio = strcspn(rec, ",");
	p = strchr(rec + prio + 1, ',');
	assert_non_null(p);
	snprintf(head, sizeof(head), "%.*s,%llu,%llu", (int)prio, rec, seq, seq * 10000000ULL);
	splice(rec, sizeof(rec), rec, (size_t)(strchr(p + 1, ',') - rec), head);
	if (gpu) {
		/* "Xid (PCI:0000:3b:00" or "Xid (0000:01:00": the driver's DDDD:BB:DD */
		p = strstr(rec, "Xid (");
		assert_non_null(p);
		p += strlen("Xid (");
		if (strncmp(p, "PCI:", 4) == 0)
			p += 4;
		memcpy(p, gpu, 10);
	}
	if (gi >= 0) {
		p = strstr(rec, "GPU-I:");
		assert_non_null(p);
		p += strlen("GPU-I:");
		snprintf(num, sizeof(num), "%02d", gi);
		splice(rec, sizeof(rec), p, strspn(p, "0123456789"), num);
		if ((q = strstr(rec, "GPU-CI:")))
			splice(rec, sizeof(rec), q + 7, strspn(q + 7, "0123456789"), "00");
	}
	if (xid > 0) {
		p = strstr(rec, "): ");
		assert_non_null(p);
		p += 3;
		snprintf(num, sizeof(num), "%d", xid);
		splice(rec, sizeof(rec), p, strspn(p, "0123456789"), num);
	}
	strcat(rec, "\n");
	test_kmsg_write(nd->root, rec, strlen(rec));
}

static void node_start(struct node *nd)
{
	nd->x = test_xpud_start_nvml(nd->root, NULL, NULL);
	nd->s = test_stream_open(nd->x->socket);
	assert_true(test_stream_wait(nd->s, (const char *const[]){ "\"subscribed\"", NULL },
				     10000) >= 0);
	nd->fresh = 0;
}

static void node_stop(struct node *nd)
{
	test_stream_close(nd->s);
	assert_int_equal(test_xpud_stop(nd->x), 0);
	nd->root = test_xpud_take_root(nd->x);
	test_xpud_free(nd->x);
	nd->x = NULL;
}

/* The hgx-h100 node, its MIG GPU's instances 1..7 with UUIDs the test knows. */
static struct node *node_new(void)
{
	struct node *nd = calloc(1, sizeof(*nd));
	json_t *migs = json_array();
	char uuid[48];

	assert_true(nd && migs);
	nd->root = test_fixture_new("hgx-h100");
	for (unsigned gi = 1; gi <= 7; gi++)
		json_array_append_new(migs, json_pack("{s:i, s:i, s:i, s:s}", "profile", 19, "gi",
						      gi, "ci", 0, "uuid", mig_uuid(gi, uuid)));
	test_fake_nvml_set(nd->root, MIG_GPU, "mig_instances", migs);
	node_start(nd);
	return nd;
}

static void node_free(struct node *nd)
{
	if (nd->x)
		node_stop(nd);
	assert_int_equal(fixture_destroy(nd->root), 0);
	free(nd->root);
	free(nd);
}

/* Waits (10 s at most) until the log has @needle @count times. */
static void wait_log(const struct node *nd, const char *needle, unsigned count)
{
	for (int i = 0; i < 200 && test_xpud_log_count(nd->x, needle) < count; i++)
		usleep(50 * 1000);
	if (test_xpud_log_count(nd->x, needle) != count)
		fail_msg("the log has \"%s\" %u times, not %u", needle,
			 test_xpud_log_count(nd->x, needle), count);
}

static json_t *device(const struct node *nd, const char *id)
{
	char path[128];
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	assert_int_equal(test_request(nd->x, "GET", path, &doc), 200);
	return doc;
}

static void assert_health(const struct node *nd, const char *id, const char *state,
			  const char *reason)
{
	json_t *d = device(nd, id), *h = json_object_get(d, "health");

	assert_string_equal(str(h, "state"), state);
	if (reason)
		assert_string_equal(str(h, "reason"), reason);
	json_decref(d);
}

/* The health of slice @id of the MIG GPU, and its reason in *@reason (@size). */
static const char *slice_health(const struct node *nd, const char *id, char *reason, size_t size)
{
	static char state[32];
	json_t *doc = NULL, *sl;
	size_t i;

	state[0] = reason[0] = '\0';
	assert_int_equal(test_request(nd->x, "GET", "/v1/slices", &doc), 200);
	json_array_foreach(json_object_get(doc, "slices"), i, sl)
		if (streq_ptr(str(sl, "id"), id)) {
			snprintf(state, sizeof(state), "%s", str(sl, "health"));
			snprintf(reason, size, "%s", str(sl, "health_reason") ?: "");
		}
	json_decref(doc);
	return state;
}

/* "XID 79 (GPU has fallen off the bus)[ in GPU instance 1, compute instance 0]: reset-gpu" */
static void reason_of(unsigned xid, int gi, int ci, char *buf, size_t size)
{
	const char *what;
	enum health_action a = nvidia_xid_action(xid, NULL, &what);
	char scope[64] = "";

	if (gi >= 0 && ci >= 0)
		snprintf(scope, sizeof(scope), " in GPU instance %d, compute instance %d", gi, ci);
	else if (gi >= 0)
		snprintf(scope, sizeof(scope), " in GPU instance %d", gi);
	snprintf(buf, size, "XID %u (%s)%s: %s", xid, what, scope, health_action_to_string(a));
}

static bool needs_reset(const struct sample *s)
{
	return streq(s->action, "reset-gpu") || streq(s->action, "reboot-node");
}

/* An application's XID, on a whole GPU or in a MIG instance: logged, nothing unhealthy. */
static void check_app_error(struct node *nd, const struct sample *s, size_t k)
{
	const char *gpu = s->gi >= 0 ? MIG_GPU : whole[k % N_WHOLE];
	int gi = s->gi >= 0 ? (int)(k % 7) + 1 : -1;
	char reason[256], needle[320];
	unsigned before;

	reason_of(s->xid, gi, gi >= 0 && s->ci >= 0 ? 0 : -1, reason, sizeof(reason));
	assert_string_equal(strrchr(reason, ' ') + 1, s->action);
	snprintf(needle, sizeof(needle), "GPU %s: %s", gpu, reason);
	before = test_xpud_log_count(nd->x, needle);
	send_sample(nd, s, gpu, gi, 0);
	wait_log(nd, needle, before + 1);
	assert_health(nd, gpu, "healthy", NULL);
}

/* An XID that needs a reset, on a GPU that has had none yet: that GPU, and only it, unhealthy
 * with the XID's reason. */
static void check_gpu_fault(struct node *nd, const struct sample *s)
{
	char reason[256], needle[64];
	const char *gpu;

	if (nd->fresh == N_WHOLE) {
		node_stop(nd);
		node_start(nd);
	}
	gpu = whole[nd->fresh++];
	reason_of(s->xid, -1, -1, reason, sizeof(reason));
	assert_string_equal(strrchr(reason, ' ') + 1, s->action);
	send_sample(nd, s, gpu, -1, 0);
	snprintf(needle, sizeof(needle), "\"device_id\":\"%s\"", gpu);
	if (test_stream_wait(nd->s, (const char *const[]){ "\"health-changed\"", needle, NULL },
			     10000) < 0)
		fail_msg("xid-lines.txt:%u: no health change of %s", s->lineno, gpu);
	assert_health(nd, gpu, "unhealthy", reason);
	for (size_t i = nd->fresh; i < N_WHOLE; i++)
		assert_health(nd, whole[i], "healthy", NULL);
}

/* The sample's MIG format for XID 95 (uncontained: a reset) in GPU instance @gi: that
 * instance's MIG device unhealthy, the GPU and its other instances not. */
static void check_mig_fault(struct node *nd, const struct sample *s, int gi)
{
	char reason[256], got[256], uuid[48];

	reason_of(95, gi, s->ci >= 0 ? 0 : -1, reason, sizeof(reason));
	send_sample(nd, s, MIG_GPU, gi, 95);
	for (int i = 0; i < 200; i++) {
		if (streq(slice_health(nd, mig_uuid((unsigned)gi, uuid), got, sizeof(got)),
			  "unhealthy"))
			break;
		usleep(50 * 1000);
	}
	assert_string_equal(slice_health(nd, mig_uuid((unsigned)gi, uuid), got, sizeof(got)),
			    "unhealthy");
	assert_string_equal(got, reason);
	assert_health(nd, MIG_GPU, "healthy", NULL);
	/* the instances after it have had nothing yet */
	for (unsigned other = (unsigned)gi + 1; other <= 7; other++)
		assert_string_equal(slice_health(nd, mig_uuid(other, uuid), got, sizeof(got)),
				    "healthy");
}

static void test_recorded_formats(void **state)
{
	static struct sample samples[128];
	size_t n = read_samples(samples, ELEMENTSOF(samples)), k = 0, faults = 0, migs = 0;
	struct node *nd = node_new();
	unsigned warned;

	/* first what leaves every GPU healthy: applications' XIDs, other lines, garbage */
	for (size_t i = 0; i < n; i++) {
		const struct sample *s = &samples[i];

		if (s->kind == 'x' && !needs_reset(s))
			check_app_error(nd, s, k++);
		else if (s->kind == 'n' || s->kind == 'b')
			send_sample(nd, s, NULL, -1, 0);
		else if (s->kind == 'r') {
			test_kmsg_write(nd->root, s->record, s->len);
			test_kmsg_write(nd->root, "\n", 1);
		}
	}
	/* a GPU this node does not have (the recorded address): a warning, nothing else */
	for (size_t i = 0; i < n; i++)
		if (samples[i].kind == 'x' && needs_reset(&samples[i]) && samples[i].gi < 0) {
			send_sample(nd, &samples[i], NULL, -1, 0);
			break;
		}
	wait_log(nd, "which NVML does not list, ignoring.", 1);
	/* a warning once a minute, not once a line (the others are debug lines) */
	warned = test_xpud_log_count(nd->x, "Cannot read an XID line of the kernel log ('");
	assert_int_equal(warned, 1);
	assert_true(test_xpud_log_count(nd->x, "Cannot read a record of the kernel log") >= 1);
	for (size_t i = 0; i < N_WHOLE; i++)
		assert_health(nd, whole[i], "healthy", NULL);
	assert_true(k >= 15);

	/* then each XID that needs a reset, on a GPU of its own */
	for (size_t i = 0; i < n; i++)
		if (samples[i].kind == 'x' && needs_reset(&samples[i]) && samples[i].gi < 0) {
			check_gpu_fault(nd, &samples[i]);
			faults++;
		}
	assert_true(faults >= 6);

	/* each MIG format, as an uncontained error, in a GPU instance of its own */
	node_stop(nd);
	node_start(nd);
	for (size_t i = 0; i < n; i++)
		if (samples[i].kind == 'x' && samples[i].gi >= 0)
			check_mig_fault(nd, &samples[i], (int)++migs);
	assert_true(migs >= 4);
	node_free(nd);
}

static json_t *nvidia_backend(const struct test_xpud *x, json_t **ret_doc)
{
	json_t *doc = NULL, *b;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/backends", &doc), 200);
	*ret_doc = doc;
	json_array_foreach(json_object_get(doc, "backends"), i, b)
		if (streq_ptr(str(b, "name"), "nvidia"))
			return b;
	fail_msg("no nvidia backend");
	return NULL;
}

/* /v1/backends and xpuctl say the kernel log is read, and for what. */
static void test_reading(void **state)
{
	struct test_xpud *x = test_xpud_start_nvml(test_fixture_new("hgx-h100"), NULL, NULL);
	json_t *doc, *b = nvidia_backend(x, &doc), *k = json_object_get(b, "kernel_log");
	_cleanup_free_ char *out = NULL;

	assert_string_equal(str(k, "reads"), "XIDs");
	assert_string_equal(str(k, "state"), "reading");
	assert_true(json_is_null(json_object_get(k, "reason")));
	json_decref(doc);
	assert_int_equal(test_request(x, "GET", "/v1/backends", &doc), 200);
	/* only the backends that read it say so */
	assert_null(json_object_get(json_array_get(json_object_get(doc, "backends"), 0),
				    "kernel_log"));
	json_decref(doc);
	assert_int_equal(test_xpuctl(x->socket, (const char *const[]){ "version", NULL }, &out), 0);
	assert_non_null(strstr(out, "nvidia (available; XIDs from the kernel log)"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* dev/kmsg is a directory: the GPUs are listed, XIDs are not read, and /v1/backends says why. */
static void test_unreadable(void **state)
{
	char *root = test_fixture_new("hgx-h100"), path[4096];
	_cleanup_free_ char *out = NULL;
	struct test_xpud *x;
	json_t *doc, *b, *k;

	snprintf(path, sizeof(path), "%s/dev/kmsg", root);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0755), 0);
	x = test_xpud_start_nvml(root, NULL, NULL);
	b = nvidia_backend(x, &doc);
	assert_true(json_is_true(json_object_get(b, "available")));
	k = json_object_get(b, "kernel_log");
	assert_string_equal(str(k, "reads"), "XIDs");
	assert_string_equal(str(k, "state"), "not read");
	assert_non_null(strstr(str(k, "reason"), "/dev/kmsg: Is a directory"));
	json_decref(doc);
	assert_true(test_xpud_log_contains(x, "The kernel log cannot be read ("));
	assert_true(test_xpud_log_contains(x, "XIDs (nvidia) are not seen, ignoring."));

	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), 8);
	assert_string_equal(str(json_array_get(json_object_get(doc, "devices"), 0), "backend"),
			    "nvidia");
	json_decref(doc);
	assert_int_equal(test_xpuctl(x->socket, (const char *const[]){ "version", NULL }, &out), 0);
	assert_non_null(strstr(out, "nvidia (available; XIDs not read: "));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recorded_formats),
		cmocka_unit_test(test_reading),
		cmocka_unit_test(test_unreadable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
