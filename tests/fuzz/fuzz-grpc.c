// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What a gRPC peer controls before any handler runs: the 5-byte framing of a request body,
 * the grpc-timeout and grpc-message values, and the protobuf decoding of every device plugin
 * message. Each decoded message is packed again: the size protobuf-c predicts must be what it
 * writes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/deviceplugin-v1beta1.pb-c.h"
#include "kube/grpc-frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const descriptors[] = {
	&v1beta1__register_request__descriptor,
	&v1beta1__device_plugin_options__descriptor,
	&v1beta1__empty__descriptor,
	&v1beta1__list_and_watch_response__descriptor,
	&v1beta1__preferred_allocation_request__descriptor,
	&v1beta1__preferred_allocation_response__descriptor,
	&v1beta1__allocate_request__descriptor,
	&v1beta1__allocate_response__descriptor,
	&v1beta1__pre_start_container_request__descriptor,
};

static void decode(const uint8_t *msg, size_t len)
{
	for (size_t i = 0; i < sizeof(descriptors) / sizeof(descriptors[0]); i++) {
		ProtobufCMessage *m = protobuf_c_message_unpack(descriptors[i], NULL, len, msg);
		size_t n;
		uint8_t *out;

		if (!m)
			continue;
		n = protobuf_c_message_get_packed_size(m);
		out = malloc(n ?: 1);
		if (out && protobuf_c_message_pack(m, out) != n)
			abort();
		free(out);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *msg;
	size_t n = size, len, used;
	char *s;
	uint64_t usec;
	int r;

	/* a request body: messages one after the other, as a stream would carry them */
	while ((r = grpc_frame_next(p, n, 65536, &msg, &len, &used)) == 1) {
		if (used > n || msg < p || msg + len > p + n)
			abort();
		decode(msg, len);
		p += used;
		n -= used;
	}
	if (grpc_frame_single(data, size, 65536, &msg, &len) == 0 && len + 5 != size)
		abort();

	/* header values */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (grpc_timeout_parse(s, &usec) == 0) {
		char buf[10];
		uint64_t again;

		/* what we send back for it is never earlier */
		if (grpc_timeout_parse(grpc_timeout_format(usec, buf), &again) < 0 ||
		    (again < usec && usec < 99999999ULL * 3600ULL * 1000000ULL))
			abort();
	}
	free(s);
	s = grpc_message_decode((const char *)data, size);
	if (s) {
		char *e = grpc_message_encode(s), *d = e ? grpc_message_decode(e, strlen(e)) : NULL;

		/* decode(encode(x)) == x for anything decode gives */
		if (d && strcmp(d, s) != 0)
			abort();
		free(d);
		free(e);
	}
	free(s);
	return 0;
}
