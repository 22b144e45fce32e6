/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cuda-visible: what the CUDA driver API shows a workload started with the environment xpud
 * granted: the number of devices and each one's UUID ("GPU-..." as NVML spells it). Read-only.
 *
 * Usage: cuda-visible [CUDA_LIBRARY]   prints "count N" then "uuid GPU-..." per device
 */
#include <dlfcn.h>
#include <stdio.h>

#include "nvidia-cuda.h"

#define SYM(h, name) typeof(name) *p_##name = (typeof(name) *)dlsym(h, #name)

int main(int argc, char **argv)
{
	void *h = dlopen(argc > 1 ? argv[1] : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	int n = 0;

	if (!h) {
		fprintf(stderr, "cuda-visible: %s\n", dlerror());
		return 1;
	}
	SYM(h, cuInit);
	SYM(h, cuDeviceGetCount);
	SYM(h, cuDeviceGet);
	SYM(h, cuDeviceGetUuid_v2);
	if (!p_cuInit || !p_cuDeviceGetCount || !p_cuDeviceGet || !p_cuDeviceGetUuid_v2)
		return 1;
	if (p_cuInit(0) != CUDA_SUCCESS || p_cuDeviceGetCount(&n) != CUDA_SUCCESS) {
		printf("count 0\n");
		return 0;
	}
	printf("count %d\n", n);
	for (int i = 0; i < n; i++) {
		const unsigned char *b;
		CUdevice d;
		CUuuid u;

		if (p_cuDeviceGet(&d, i) != CUDA_SUCCESS || p_cuDeviceGetUuid_v2(&u, d) != CUDA_SUCCESS)
			return 1;
		b = (const unsigned char *)u.bytes;
		printf("uuid GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n",
		       b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		       b[13], b[14], b[15]);
	}
	return 0;
}
