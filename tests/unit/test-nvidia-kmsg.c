// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend's kmsg op (backends/nvidia-kmsg-events.c) on a backend that knows two GPUs,
 * one of them with MIG devices: what each XID line does to a GPU or a MIG device, and what
 * changes nothing (an application's error, a GPU NVML does not list, a garbled line, a line a
 * process wrote, a repeat).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/nvidia-internal.h"
#include "shared/kmsg.h"
#include "shared/macro.h"
#include "testutil.h"

#define GPU "0000:3b:00.0"
#define MIG_GPU "0000:db:00.0"

struct result {
	struct backend_update *u;
	size_t n;
	bool rescan;
};

static struct xpu_backend *backend_new(void)
{
	static const struct {
		unsigned gi, ci;
		const char *uuid;
	} migs[] = {
		{ 3, 0, "MIG-3-0" },
		{ 5, 0, "MIG-5-0" },
		{ 5, 1, "MIG-5-1" },
	};
	struct xpu_backend *b = calloc(1, sizeof(*b));
	struct nvidia *nv = calloc(1, sizeof(*nv));

	assert_true(b && nv);
	assert_int_equal(pthread_mutex_init(&nv->lock, NULL), 0);
	for (size_t i = 0; i < 2; i++) {
		struct xpu_device *d = device_new();

		assert_non_null(d);
		assert_non_null(d->id = strdup(i == 0 ? GPU : MIG_GPU));
		assert_int_equal(device_list_push(&nv->gpus, d), 0);
	}
	nv->migs = calloc(ELEMENTSOF(migs), sizeof(*nv->migs));
	assert_non_null(nv->migs);
	for (size_t i = 0; i < ELEMENTSOF(migs); i++) {
		strcpy(nv->migs[i].addr, MIG_GPU);
		nv->migs[i].gi = migs[i].gi;
		nv->migs[i].ci = migs[i].ci;
		assert_non_null(nv->migs[i].uuid = strdup(migs[i].uuid));
	}
	nv->n_migs = ELEMENTSOF(migs);
	b->ops = &nvidia_backend_ops;
	b->available = true;
	b->userdata = nv;
	return b;
}

static void backend_free(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;

	for (size_t i = 0; i < nv->n_sticky; i++) {
		free(nv->sticky[i].reason);
		free(nv->sticky[i].slice);
	}
	pthread_mutex_destroy(&nv->lock);
	for (size_t i = 0; i < nv->n_migs; i++)
		free(nv->migs[i].uuid);
	free(nv->migs);
	device_list_clear(&nv->gpus);
	free(nv);
	free(b);
}

static void result_clear(struct result *r)
{
	backend_updates_free(r->u, r->n);
	*r = (struct result){};
}

/* Hands the record @text (NULL: the end of a batch) to the op, which must succeed. */
static struct result feed(struct xpu_backend *b, const char *text)
{
	struct result r = {};
	struct kmsg_record rec;

	if (text)
		assert_int_equal(kmsg_parse_record(text, strlen(text), &rec), 0);
	assert_int_equal(b->ops->kmsg(b, text ? &rec : NULL, &r.u, &r.n, &r.rescan), 0);
	return r;
}

static const char *slice_reason(const struct xpu_backend *b, const char *uuid)
{
	const struct nvidia *nv = b->userdata;

	for (size_t i = 0; i < nv->n_sticky; i++)
		if (streq_ptr(nv->sticky[i].slice, uuid))
			return nv->sticky[i].reason;
	return NULL;
}

static size_t n_sticky(const struct xpu_backend *b)
{
	return ((const struct nvidia *)b->userdata)->n_sticky;
}

static void test_whole_gpu(void **state)
{
	struct xpu_backend *b = backend_new();
	struct result r;

	assert_string_equal(b->ops->kmsg_what, "XIDs");
	/* an application's error: logged, the GPU stays healthy */
	r = feed(b, "4,1,10,-;NVRM: Xid (PCI:0000:3b:00): 13, pid=7, name=a.out, Graphics "
		    "Exception\n");
	assert_int_equal(r.n, 0);
	assert_false(r.rescan);
	assert_int_equal(n_sticky(b), 0);

	/* off the bus: unhealthy until reset, with what it needs */
	r = feed(b, "4,2,20,-;NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, "
		    "GPU has fallen off the bus.\n");
	assert_int_equal(r.n, 1);
	assert_false(r.rescan);
	assert_string_equal(r.u[0].id, GPU);
	assert_int_equal(r.u[0].health.state, XPU_HEALTH_UNHEALTHY);
	assert_int_equal(r.u[0].health.action, HEALTH_ACTION_RESET_DEVICE);
	assert_string_equal(r.u[0].health.reason, "XID 79 (GPU has fallen off the bus): reset-gpu");
	result_clear(&r);

	/* a later XID does not replace the first reason */
	r = feed(b, "4,3,30000000,-;NVRM: Xid (PCI:0000:3b:00): 95, Uncontained: LTC TAG\n");
	assert_int_equal(r.n, 1);
	assert_string_equal(r.u[0].health.reason, "XID 79 (GPU has fallen off the bus): reset-gpu");
	result_clear(&r);
	backend_free(b);
}

static void test_mig(void **state)
{
	struct xpu_backend *b = backend_new();
	struct result r;

	/* one compute instance's fault: its MIG device, not the GPU */
	r = feed(b, "4,1,10,-;NVRM: Xid (PCI:0000:db:00 GPU-I:03 GPU-CI:00): 95, pid=7, name=x, "
		    "Uncontained: LTC TAG (0x2, 0x1). RST: Yes, D-RST: No\n");
	assert_int_equal(r.n, 0);
	assert_true(r.rescan);
	assert_string_equal(slice_reason(b, "MIG-3-0"),
			    "XID 95 (uncontained ECC error) in GPU instance 3, compute instance 0: "
			    "reset-gpu");
	assert_null(slice_reason(b, NULL));
	assert_int_equal(n_sticky(b), 1);

	/* a GPU instance's: every MIG device of it */
	r = feed(b, "4,2,20,-;NVRM: Xid (PCI:0000:db:00 GPU-I:05): 95, pid=7, name=x, "
		    "Uncontained: LTC TAG (0x2, 0x1). RST: Yes, D-RST: No\n");
	assert_int_equal(r.n, 0);
	assert_true(r.rescan);
	assert_string_equal(slice_reason(b, "MIG-5-0"),
			    "XID 95 (uncontained ECC error) in GPU instance 5: reset-gpu");
	assert_string_equal(slice_reason(b, "MIG-5-1"),
			    "XID 95 (uncontained ECC error) in GPU instance 5: reset-gpu");
	assert_int_equal(n_sticky(b), 3);

	/* an instance the last enumeration did not see: the whole GPU */
	r = feed(b, "4,3,30,-;NVRM: Xid (PCI:0000:db:00 GPU-I:07 GPU-CI:00): 95, Uncontained\n");
	assert_int_equal(r.n, 1);
	assert_false(r.rescan);
	assert_string_equal(r.u[0].id, MIG_GPU);
	assert_string_equal(r.u[0].health.reason, "XID 95 (uncontained ECC error) in GPU instance "
						  "7, compute instance 0: reset-gpu");
	result_clear(&r);
	backend_free(b);
}

/* What changes nothing: a GPU NVML does not list, a garbled line, a process's line, other
 * lines of the log. */
static void test_nothing_changes(void **state)
{
	struct xpu_backend *b = backend_new();
	_cleanup_free_ char *log = NULL;
	struct result r;

	test_stderr_capture();
	r = feed(b, "4,1,10,-;NVRM: Xid (PCI:0000:44:00): 79, GPU has fallen off the bus.\n");
	assert_int_equal(r.n + r.rescan + n_sticky(b), 0);
	r = feed(b, "4,2,20,-;NVRM: Xid (PCI:0000:3b\n");
	assert_int_equal(r.n + r.rescan + n_sticky(b), 0);
	r = feed(b, "4,3,30,-;NVRM: Xid (PCI:0000:3b:00 GPU-CI:01): 79, x\n");
	assert_int_equal(r.n + r.rescan + n_sticky(b), 0);
	/* written to /dev/kmsg by a process (facility user): not the driver's */
	r = feed(b, "12,4,40,-;NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.\n");
	assert_int_equal(r.n + r.rescan + n_sticky(b), 0);
	r = feed(b, "6,5,50,-;NVRM: GPU at PCI:0000:3b:00: GPU-efbdfde9-5798-a6e7-4c46\n");
	assert_int_equal(r.n + r.rescan + n_sticky(b), 0);
	r = feed(b, "3,6,60,-;nvidia-nvswitch3: SXid (PCI:0000:05:00.0): 12028, Non-fatal\n");
	assert_int_equal(r.n + r.rescan + n_sticky(b), 0);
	log = test_stderr_captured();
	assert_non_null(strstr(log, "The kernel log reports XID 79 for GPU 0000:44:00.0, which "
				    "NVML does not list, ignoring."));
	/* one warning for garbled lines in a minute, not one each */
	assert_non_null(strstr(log, "Cannot read an XID line of the kernel log ('NVRM: Xid "
				    "(PCI:0000:3b'), ignoring."));
	assert_null(strstr(log, "GPU-CI:01"));
	backend_free(b);
}

/* A storm of one XID: handled once, the repeats counted at the end of each batch; the same
 * XID much later is handled again. */
static void test_storm(void **state)
{
	struct xpu_backend *b = backend_new();
	_cleanup_free_ char *log = NULL;
	unsigned updates = 0;
	char text[256];
	struct result r;

	test_stderr_capture();
	for (unsigned i = 0; i < 500; i++) {
		snprintf(text, sizeof(text),
			 "4,%u,%u,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=%u, name=x, GPU has fallen "
			 "off the bus.\n",
			 100 + i, 1000000 + i * 1000, i);
		r = feed(b, text);
		updates += r.n;
		result_clear(&r);
		if (i == 299)
			r = feed(b, NULL);
	}
	r = feed(b, NULL);
	/* a minute later (kernel time): a new fault, handled */
	r = feed(b, "4,700,90000000,-;NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the "
		    "bus.\n");
	updates += r.n;
	result_clear(&r);
	/* repeats end with another line too, not only with the batch */
	for (unsigned i = 0; i < 3; i++)
		r = feed(b, "4,800,91000000,-;NVRM: Xid (PCI:0000:db:00): 13, Graphics "
			    "Exception\n");
	r = feed(b, "4,801,91000001,-;NVRM: Xid (PCI:0000:3b:00): 13, Graphics Exception\n");
	log = test_stderr_captured();
	assert_non_null(strstr(log, "The last XID of GPU " MIG_GPU " in the kernel log repeated 2 "
				    "times."));
	assert_int_equal(updates, 2);
	assert_non_null(strstr(log, "The last XID of GPU " GPU " in the kernel log repeated 299 "
				    "times."));
	assert_non_null(strstr(log, "The last XID of GPU " GPU " in the kernel log repeated 200 "
				    "times."));
	backend_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_gpu),
		cmocka_unit_test(test_mig),
		cmocka_unit_test(test_nothing_changes),
		cmocka_unit_test(test_storm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
