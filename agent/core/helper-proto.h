/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a helper process (xpud-helper: the side that loads a vendor runtime) tells xpud: plain,
 * versioned data, one JSON object per line, each with "v" (the protocol version, 1) and "type".
 * xpud reads it like any untrusted input: sizes are bounded, every field is checked, a reply that
 * does not end with its "end" line is truncated and not used. docs/architecture.md, "Helpers".
 *
 *   {"v":1,"type":"hello","helper":"nvml","facts":{"driver_version":"580.95.05", ...}}
 *   {"v":1,"type":"device","device":{...}}            one device record (device_to_json())
 *   {"v":1,"type":"failure","index":3,"id":"0000:18:00.0","error":"NVML: GPU is lost"}
 *                                                     a device the helper could not describe;
 *                                                     "id" null when it could not tell which
 *   {"v":1,"type":"slice-ref","id":"0000:18:00.0","slice":"MIG-...","coords":[3,0]}
 *                                                     the numbers the vendor's own logs name a
 *                                                     partition by (a MIG GPU/compute instance)
 *   {"v":1,"type":"facts","id":"0000:18:00.0","facts":{"cuda_ordinal":"0", ...}}
 *                                                     properties to add to a device
 *   {"v":1,"type":"result","errno":0,"error":null,"value":2}
 *                                                     the outcome of an action (an apply, a
 *                                                     process count)
 *   {"v":1,"type":"error","errno":-2,"unavailable":true,"error":"libnvidia-ml.so.1: ..."}
 *                                                     the helper could do nothing; unavailable:
 *                                                     the runtime is not there (not a fault)
 *   {"v":1,"type":"end"}
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <jansson.h>

#include "core/device.h"

#define HELPER_PROTO_VERSION 1
#define HELPER_LINE_MAX (256 * 1024)	     /* bytes of one line */
#define HELPER_OUTPUT_MAX (4 * 1024 * 1024) /* bytes of one reply */
#define HELPER_MAX_DEVICES 256
#define HELPER_MAX_ITEMS 4096 /* failures, slice refs, facts messages, each */

struct helper_failure {
	int index;  /* the vendor's own number for the device, or -1 */
	char *id;   /* the device's id, or NULL when the helper could not tell */
	char *error;
};

struct helper_slice_ref {
	char *id;    /* the device */
	char *slice; /* the partition's slice id */
	unsigned coords[2];
};

struct helper_facts {
	char *id;
	char **facts; /* key, value, ..., NULL */
};

struct helper_reply {
	char *helper;	   /* hello's name, or NULL when there was no hello */
	char **facts;	   /* hello's facts: key, value, ..., NULL */
	struct device_list devices;
	struct helper_failure *failures;
	size_t n_failures;
	struct helper_slice_ref *slice_refs;
	size_t n_slice_refs;
	struct helper_facts *device_facts;
	size_t n_device_facts;
	bool has_result;
	int result_errno; /* <= 0 */
	char *result_error;
	long long result_value;
	bool has_error;
	int error_errno; /* < 0 */
	bool error_unavailable;
	char *error;
};

void helper_reply_done(struct helper_reply *r);

/*
 * Parses a whole reply (@len bytes, not necessarily NUL-terminated). 0 with *ret filled in; or
 * -EBADMSG with a malloc'd one-line reason in *ret_error naming the line and the field ("line 3:
 * device.pci.address: not a PCI address"), and *ret untouched: a reply longer than
 * HELPER_OUTPUT_MAX or with a line longer than HELPER_LINE_MAX, a line that is not a JSON
 * object, another "v", an unknown "type", a field missing, of the wrong type or out of range,
 * more items than the limits above, anything after "end", or no "end" (truncated); -ENOMEM.
 */
int helper_reply_parse(const char *buf, size_t len, struct helper_reply *ret, char **ret_error);

/* The helper's side: each builds one message (NULL on OOM), helper_emit() writes it as one line
 * with "v" added and flushes. helper_emit() takes the reference; 0 or -errno. */
json_t *helper_msg_hello(const char *helper, char *const *facts);
json_t *helper_msg_device(const struct xpu_device *d);
json_t *helper_msg_failure(int index, const char *id, const char *error);
json_t *helper_msg_slice_ref(const char *id, const char *slice, unsigned a, unsigned b);
json_t *helper_msg_facts(const char *id, char *const *facts);
json_t *helper_msg_result(int err, const char *error, long long value);
json_t *helper_msg_error(int err, bool unavailable, const char *error);
json_t *helper_msg_end(void);
int helper_emit(FILE *out, json_t *msg);

/*
 * A device record as JSON and back: every field of struct xpu_device a backend fills in (not
 * backend nor rules, which the registry sets), its partitions and profiles included, health with
 * its action. device_from_json() checks everything: strings printable and at most 4096 bytes,
 * a canonical PCI address, a known kind and health state, at most 256 partitions, 64 profiles,
 * 1024 properties, 64 device nodes and env entries (KEY=VALUE), numbers in range. 0 or -EBADMSG
 * with the path of the first bad field in *ret_error (malloc'd: "pci.address: not a PCI
 * address"), -ENOMEM.
 */
json_t *device_to_json(const struct xpu_device *d);
int device_from_json(const json_t *j, struct xpu_device **ret, char **ret_error);
