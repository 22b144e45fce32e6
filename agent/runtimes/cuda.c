// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The CUDA driver API in the helper ("xpud-helper cuda LIBRARY"): loading libcuda and cuInit
 * keep ~7 MiB resident (H100, driver 580; docs/performance.md) and threads of their own, which
 * xpud must not carry. What it adds to each GPU is written as a facts message: its CUDA ordinal,
 * multiprocessors, threads per multiprocessor, L2 cache and clock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/helper-proto.h"
#include "runtimes/nvidia-cuda.h"
#include "runtimes/nvml.h"
#include "shared/dlopen-util.h"
#include "shared/strv.h"

static int fact_u(char ***facts, const char *key, long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", v);
	return strv_extend(facts, key) < 0 || strv_extend(facts, buf) < 0 ? -ENOMEM : 0;
}

int cuda_probe_main(const char *library, FILE *out)
{
	struct {
		CUresult (*init)(unsigned int);
		CUresult (*count)(int *);
		CUresult (*get)(CUdevice *, int);
		CUresult (*bus_id)(char *, int, CUdevice);
		CUresult (*attribute)(int *, CUdevice_attribute, CUdevice);
	} cu;
	const struct dlsym_spec syms[] = {
		{ (void **)&cu.init, "cuInit" },
		{ (void **)&cu.count, "cuDeviceGetCount" },
		{ (void **)&cu.get, "cuDeviceGet" },
		{ (void **)&cu.bus_id, "cuDeviceGetPCIBusId" },
		{ (void **)&cu.attribute, "cuDeviceGetAttribute" },
	};
	static const struct {
		CUdevice_attribute attr;
		const char *fact;
		long long scale;
	} attrs[] = {
		{ CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessor_count", 1 },
		{ CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, "max_threads_per_multiprocessor",
		  1 },
		{ CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, "l2_cache_bytes", 1 },
		{ CU_DEVICE_ATTRIBUTE_CLOCK_RATE, "max_clock_mhz", 1000 }, /* kHz */
	};
	_cleanup_strv_free_ char **hello = NULL;
	_cleanup_free_ char *reason = NULL;
	struct timespec t0, t1;
	void *dl = NULL;
	int count = 0, k;
	CUresult r;

	if (dlopen_many(library, syms, ELEMENTSOF(syms), &dl, &reason) < 0)
		return helper_emit(out, helper_msg_error(-ENOENT, true, reason ?: library)) < 0 ||
		       helper_emit(out, helper_msg_end()) < 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = cu.init(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r != CUDA_SUCCESS || cu.count(&count) != CUDA_SUCCESS) {
		char msg[64];

		snprintf(msg, sizeof(msg), "cuInit failed (CUDA error %d)", r);
		return helper_emit(out, helper_msg_error(-EIO, false, msg)) < 0 ||
		       helper_emit(out, helper_msg_end()) < 0;
	}
	if (fact_u(&hello, "init_ms",
		   (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000) < 0)
		return 1;
	k = helper_emit(out, helper_msg_hello("cuda", hello));
	for (int i = 0; i < count && i < NVML_MAX_GPUS && k >= 0; i++) {
		_cleanup_strv_free_ char **facts = NULL;
		char bus[32], addr[13];
		CUdevice dev;

		if (cu.get(&dev, i) != CUDA_SUCCESS ||
		    cu.bus_id(bus, (int)sizeof(bus), dev) != CUDA_SUCCESS ||
		    parse_pci_address(bus, addr) < 0)
			continue;
		if (fact_u(&facts, "cuda_ordinal", i) < 0)
			return 1;
		for (size_t j = 0; j < ELEMENTSOF(attrs); j++) {
			int v;

			if (cu.attribute(&v, attrs[j].attr, dev) == CUDA_SUCCESS && v > 0 &&
			    fact_u(&facts, attrs[j].fact, v / attrs[j].scale) < 0)
				return 1;
		}
		k = helper_emit(out, helper_msg_facts(addr, facts));
	}
	if (k >= 0)
		k = helper_emit(out, helper_msg_end());
	return k < 0;
}
