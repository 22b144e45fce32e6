// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the amdgpu driver writes that xpud parses: a KFD topology node's properties, and a RAS
 * counter file. The first byte picks the parser, the rest is its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/drm-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kfd_node k;
	uint64_t ue;
	char *s;
	int r;

	if (size < 1)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (data[0] % 2) {
		uint64_t ue2, ce;

		r = amdgpu_ras_parse(s, &ue);
		/* both counts: the same uncorrectable count as the health check reads */
		if (amdgpu_ras_counts(s, &ue2, &ce) >= 0 && (r < 0 || ue2 != ue))
			abort();
	} else {
		r = amdgpu_kfd_parse(s, &k);
		/* a GPU node has SIMDs, and its render minor is a minor or unknown */
		if (r == 1 && (k.simd_count == 0 || k.simd_per_cu == 0 || k.render_minor >= (1 << 20)))
			abort();
	}
	free(s);
	return 0;
}
