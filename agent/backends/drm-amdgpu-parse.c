// SPDX-License-Identifier: GPL-2.0-or-later
/* The amdgpu part's parsers of what the driver writes (drm-internal.h); fuzzed (fuzz-amdgpu). */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "backends/drm-internal.h"
#include "shared/parse.h"

static int kfd_set(struct kfd_node *k, const char *key, uint64_t v)
{
	static const struct {
		const char *key;
		size_t offset;
		size_t size;
	} fields[] = {
#define F(name, member) { name, offsetof(struct kfd_node, member), sizeof(((struct kfd_node *)0)->member) }
		F("domain", domain),
		F("location_id", location_id),
		F("unique_id", unique_id),
		F("hive_id", hive_id),
		F("local_mem_size", local_mem),
		F("gfx_target_version", gfx_target_version),
		F("simd_count", simd_count),
		F("simd_per_cu", simd_per_cu),
		F("num_xcc", num_xcc),
#undef F
	};

	if (streq(key, "drm_render_minor")) {
		k->render_minor = v < (1u << 20) ? (int)v : -1;
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		void *p = (char *)k + fields[i].offset;
		uint32_t v32 = (uint32_t)v;

		if (!streq(key, fields[i].key))
			continue;
		if (fields[i].size == sizeof(uint64_t))
			memcpy(p, &v, sizeof(v));
		else if (v <= UINT32_MAX)
			memcpy(p, &v32, sizeof(v32));
		else
			return -ERANGE;
		return 0;
	}
	return 0;
}

int amdgpu_kfd_parse(char *text, struct kfd_node *ret)
{
	struct kfd_node k = { .render_minor = -1 };
	char *save = NULL;
	int r;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *value = strchr(line, ' ');
		uint64_t v;

		if (!value)
			continue;
		*value++ = '\0';
		if (safe_atou64(value, &v) < 0)
			continue;
		r = kfd_set(&k, line, v);
		if (r < 0)
			return r;
	}
	if (k.simd_count == 0)
		return 0;
	if (k.simd_per_cu == 0)
		k.simd_per_cu = 4; /* GCN and CDNA: four SIMDs per compute unit */
	*ret = k;
	return 1;
}

/* The number after "@key:" at the start of @text; *ret_end: the rest after its line. */
static int ras_line(const char *text, const char *key, uint64_t *ret, const char **ret_end)
{
	char buf[32];
	size_t n, k = strlen(key);
	int r;

	if (strncmp(text, key, k) != 0 || text[k] != ':')
		return -EINVAL;
	text += k + 1;
	text += strspn(text, " ");
	n = strcspn(text, "\n");
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, n);
	buf[n] = '\0';
	r = safe_atou64(buf, ret);
	if (r < 0)
		return r;
	*ret_end = text + n + (text[n] == '\n');
	return 0;
}

int amdgpu_ras_counts(const char *text, uint64_t *ret_ue, uint64_t *ret_ce)
{
	uint64_t ue, ce;
	int r;

	r = ras_line(text, "ue", &ue, &text);
	if (r >= 0)
		r = ras_line(text, "ce", &ce, &text);
	if (r < 0)
		return r;
	*ret_ue = ue;
	*ret_ce = ce;
	return 0;
}

int amdgpu_ras_parse(const char *text, uint64_t *ret_ue)
{
	const char *end;

	return ras_line(text, "ue", ret_ue, &end);
}
