// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the helper protocol's reader (helper_reply_parse), which reads what a
 * helper process printed: a process that loaded a vendor runtime, which may have crashed,
 * been cut off or gone wrong in any way. Besides memory errors, the harness checks the
 * documented contract: 0, -EBADMSG with a one-line reason and the caller's struct untouched,
 * or -ENOMEM; and whatever parsed is what the helper's side writes back: every device goes
 * through device_to_json() and the reader again to an equal device (its health actions, the
 * device's and its slices', too), and the whole reply re-emitted with helper_emit() parses to
 * the same reply.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/helper-proto.h"
#include "shared/parse.h"
#include "shared/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_device(const struct xpu_device *a, const struct xpu_device *b)
{
	if (!device_equal(a, b) || a->health.action != b->health.action)
		return false;
	for (size_t i = 0; i < a->n_partitions; i++)
		if (a->partitions[i]->health.action != b->partitions[i]->health.action)
			return false;
	return true;
}

/* One device through its JSON text and back, as it travels. */
static void device_round_trip(const struct xpu_device *d)
{
	_cleanup_free_ char *text = NULL, *error = NULL;
	struct xpu_device *back = NULL;
	json_t *j = device_to_json(d), *again;

	if (!j)
		abort(); /* it was read, so it can be written */
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		abort();
	again = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	if (!again || device_from_json(again, &back, &error) != 0) {
		fprintf(stderr, "device does not read back: %s\n%s\n", error, text);
		abort();
	}
	json_decref(again);
	if (!same_device(d, back)) {
		fprintf(stderr, "round trip changed the device:\n%s\n", text);
		abort();
	}
	device_free(back);
}

/* The whole reply as the helper's side would print it; false when a line would be too long. */
static bool emit_reply(FILE *f, const struct helper_reply *r)
{
	int k = 0;

	if (r->helper)
		k = helper_emit(f, helper_msg_hello(r->helper, r->facts));
	for (size_t i = 0; k == 0 && i < r->devices.n; i++)
		k = helper_emit(f, helper_msg_device(r->devices.items[i]));
	for (size_t i = 0; k == 0 && i < r->n_failures; i++)
		k = helper_emit(f, helper_msg_failure(r->failures[i].index, r->failures[i].id,
						      r->failures[i].error));
	for (size_t i = 0; k == 0 && i < r->n_slice_refs; i++)
		k = helper_emit(f, helper_msg_slice_ref(r->slice_refs[i].id, r->slice_refs[i].slice,
							r->slice_refs[i].coords[0],
							r->slice_refs[i].coords[1]));
	for (size_t i = 0; k == 0 && i < r->n_device_facts; i++)
		k = helper_emit(f,
				helper_msg_facts(r->device_facts[i].id, r->device_facts[i].facts));
	if (k == 0 && r->has_result)
		k = helper_emit(
		    f, helper_msg_result(r->result_errno, r->result_error, r->result_value));
	if (k == 0 && r->has_error)
		k = helper_emit(f,
				helper_msg_error(r->error_errno, r->error_unavailable, r->error));
	if (k == 0)
		k = helper_emit(f, helper_msg_end());
	if (k == -E2BIG)
		return false; /* the defaults written out made a line longer than the input's */
	if (k < 0)
		abort();
	return true;
}

static void reply_round_trip(const struct helper_reply *r)
{
	_cleanup_free_ char *buf = NULL, *error = NULL;
	struct helper_reply b = {};
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool ok;

	if (!f)
		abort();
	ok = emit_reply(f, r);
	if (fclose(f) != 0)
		abort();
	if (!ok || len > HELPER_OUTPUT_MAX)
		return;
	if (helper_reply_parse(buf, len, &b, &error) != 0) {
		fprintf(stderr, "re-emitted reply does not parse: %s\n%s\n", error, buf);
		abort();
	}
	if (!streq_ptr(b.helper, r->helper) || !strv_equal(b.facts, r->facts) ||
	    b.devices.n != r->devices.n || b.n_failures != r->n_failures ||
	    b.n_slice_refs != r->n_slice_refs || b.n_device_facts != r->n_device_facts ||
	    b.has_result != r->has_result || b.result_errno != r->result_errno ||
	    b.result_value != r->result_value || !streq_ptr(b.result_error, r->result_error) ||
	    b.has_error != r->has_error || b.error_errno != r->error_errno ||
	    b.error_unavailable != r->error_unavailable || !streq_ptr(b.error, r->error))
		abort();
	for (size_t i = 0; i < r->devices.n; i++)
		if (!same_device(r->devices.items[i], b.devices.items[i]))
			abort();
	for (size_t i = 0; i < r->n_failures; i++)
		if (b.failures[i].index != r->failures[i].index ||
		    !streq_ptr(b.failures[i].id, r->failures[i].id) ||
		    !streq(b.failures[i].error, r->failures[i].error))
			abort();
	for (size_t i = 0; i < r->n_slice_refs; i++)
		if (!streq(b.slice_refs[i].id, r->slice_refs[i].id) ||
		    !streq(b.slice_refs[i].slice, r->slice_refs[i].slice) ||
		    b.slice_refs[i].coords[0] != r->slice_refs[i].coords[0] ||
		    b.slice_refs[i].coords[1] != r->slice_refs[i].coords[1])
			abort();
	for (size_t i = 0; i < r->n_device_facts; i++)
		if (!streq(b.device_facts[i].id, r->device_facts[i].id) ||
		    !strv_equal(b.device_facts[i].facts, r->device_facts[i].facts))
			abort();
	helper_reply_done(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *error = NULL, *buf = malloc(size ?: 1);
	struct helper_reply r, before;
	int k;

	if (!buf)
		return 0;
	memcpy(buf, data, size); /* exactly @size bytes: no terminating NUL to lean on */
	memset(&r, 0xa5, sizeof(r));
	before = r;
	k = helper_reply_parse(buf, size, &r, &error);
	if (k != 0 && k != -EBADMSG && k != -ENOMEM)
		abort();
	if (k != 0) {
		if (memcmp(&r, &before, sizeof(r)) != 0)
			abort(); /* written on success only */
		if (k == -EBADMSG && (!error || !string_is_printable(error)))
			abort(); /* one printable line */
		return 0;
	}
	if (error)
		abort();
	for (size_t i = 0; i < r.devices.n; i++)
		device_round_trip(r.devices.items[i]);
	reply_round_trip(&r);
	helper_reply_done(&r);
	return 0;
}
