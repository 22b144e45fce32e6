// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What changes a GPU, in the helper: applying a MIG layout (nvml-mig.c makes the calls), and the
 * check a reset makes first, whether processes use the GPU. Each answers with one result message.
 * A call that hangs in the driver is bounded by xpud's deadline on the whole helper.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/helper-proto.h"
#include "runtimes/nvml.h"

/* The handle of the GPU at @addr. 0, -ENODEV when NVML does not list it, -EIO. */
static int handle_by_address(const struct nvml *api, const char *addr, nvmlDevice_t *ret)
{
	unsigned count = 0;

	if (api->count(&count) != NVML_SUCCESS)
		return -EIO;
	for (unsigned i = 0; i < MIN(count, NVML_MAX_GPUS); i++) {
		nvmlPciInfo_t pci = {};
		nvmlDevice_t h;
		char a[13];

		if (api->handle(i, &h) == NVML_SUCCESS && api->pci(h, &pci) == NVML_SUCCESS &&
		    nvml_bus_id(&pci, a) >= 0 && streq(a, addr)) {
			*ret = h;
			return 0;
		}
	}
	return -ENODEV;
}

int nvml_apply(struct nvml_session *s, const char *addr, const struct offer *o, FILE *out)
{
	_cleanup_free_ char *error = NULL;
	const char *missing = nvidia_mig_missing(&s->api.mig);
	nvmlDevice_t h;
	int r;

	if (missing) {
		if (asprintf(&error, "the NVML library has no %s: MIG layouts cannot be applied",
			     missing) < 0)
			return -ENOMEM;
		return helper_emit(out, helper_msg_result(-EOPNOTSUPP, error, 0));
	}
	r = handle_by_address(&s->api, addr, &h);
	if (r < 0)
		return helper_emit(out, helper_msg_result(r, "NVML does not list this GPU", 0));
	r = nvidia_mig_apply(&s->api.mig, h, o, &error);
	return helper_emit(out, helper_msg_result(r < 0 ? r : 0, r < 0 ? error : NULL, 0));
}

/*
 * How many processes NVML lists on the GPU: compute and graphics contexts, as the result's value.
 * -ENODEV when NVML does not list the GPU, -EOPNOTSUPP when the library has no process lists,
 * NVML's error otherwise.
 */
int nvml_processes(struct nvml_session *s, const char *addr, FILE *out)
{
	const struct nvml *api = &s->api;
	nvmlReturn_t (*const lists[])(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *) = {
		api->compute_processes,
		api->graphics_processes,
	};
	long long total = 0;
	nvmlDevice_t h;
	int r;

	r = handle_by_address(api, addr, &h);
	if (r < 0)
		return helper_emit(out, helper_msg_result(r, "NVML does not list this GPU", 0));
	for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
		unsigned int n = 0;
		nvmlReturn_t k;

		if (!lists[i])
			return helper_emit(out, helper_msg_result(-EOPNOTSUPP,
								  "the NVML library has no "
								  "process lists",
								  0));
		k = lists[i](h, &n, NULL);
		if (k != NVML_SUCCESS && k != NVML_ERROR_INSUFFICIENT_SIZE)
			return helper_emit(out, helper_msg_result(nvml_to_errno(k) ?: -EIO,
								  nvml_error(api, k), 0));
		total += k == NVML_SUCCESS ? 0 : (long long)MIN(n, 65536u);
	}
	return helper_emit(out, helper_msg_result(0, NULL, total));
}
