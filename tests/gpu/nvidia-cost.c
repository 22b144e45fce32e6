/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nvidia-cost: what each NVML and CUDA driver call xpud makes costs on this host, and what
 * loading and initialising each library adds to a process's resident memory. Read-only: it
 * makes the same queries xpud makes and changes nothing on any GPU.
 *
 * Usage: nvidia-cost [NVML_LIBRARY [CUDA_LIBRARY]]   (defaults: the sonames xpud opens)
 * Prints a Markdown table. CUDA is measured first, in a child process, so that cuInit is timed
 * cold and its memory is not counted against NVML.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nvidia-cuda.h"
#include "nvidia-nvml.h"

#define REPS 200

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Resident anonymous and file-backed memory, and whether libcuda is mapped: NVML may load it. */
static void memory_note(const char *when)
{
	char line[512];
	long anon = -1, file = -1;
	bool cuda = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "RssAnon: %ld", &anon) != 1)
				(void)sscanf(line, "RssFile: %ld", &file);
		fclose(f);
	}
	f = fopen("/proc/self/maps", "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			cuda = cuda || strstr(line, "libcuda.so");
		fclose(f);
	}
	printf("| memory | %s | process | anon %ld KiB, file %ld KiB%s | | |\n", when, anon, file,
	       cuda ? ", libcuda mapped" : "");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void row(const char *lib, const char *call, const char *scope, double *t, int n, int rc)
{
	qsort(t, n, sizeof(*t), cmp_double);
	if (n == 1)
		printf("| %s | `%s` | %s | %.1f | (once) | %d |\n", lib, call, scope, t[0], rc);
	else
		printf("| %s | `%s` | %s | %.1f | %.1f | %d |\n", lib, call, scope, t[n / 2],
		       t[n - 1], rc);
	fflush(stdout);
}

/* Time an expression REPS times (or once), store the last return code in rc. */
#define TIME(lib, call, scope, reps, expr)                                  \
	do {                                                                 \
		double _t[REPS];                                             \
		int _rc = 0;                                                 \
		for (int _i = 0; _i < (reps); _i++) {                        \
			double _s = now_us();                                \
			_rc = (expr);                                        \
			_t[_i] = now_us() - _s;                              \
		}                                                            \
		row(lib, call, scope, _t, (reps), _rc);                      \
	} while (0)

static void *open_timed(const char *lib, const char *path)
{
	double s = now_us();
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!h)
		printf("| %s | `dlopen` | %s | failed: %s | | |\n", lib, path, dlerror());
	else
		printf("| %s | `dlopen` | process | %.1f | (once) | 0 |\n", lib, now_us() - s);
	return h;
}

#define SYM(h, name) typeof(name) *p_##name = (typeof(name) *)dlsym(h, #name)

static int cuda_costs(const char *path)
{
	long before = rss_kib();
	void *h = open_timed("CUDA", path);

	if (!h)
		return 1;
	SYM(h, cuInit);
	SYM(h, cuDriverGetVersion);
	SYM(h, cuDeviceGetCount);
	SYM(h, cuDeviceGet);
	SYM(h, cuDeviceGetName);
	SYM(h, cuDeviceGetPCIBusId);
	SYM(h, cuDeviceGetAttribute);
	SYM(h, cuDeviceTotalMem_v2);
	SYM(h, cuDeviceGetUuid_v2);
	if (!p_cuInit || !p_cuDriverGetVersion || !p_cuDeviceGetCount || !p_cuDeviceGet ||
	    !p_cuDeviceGetName || !p_cuDeviceGetPCIBusId || !p_cuDeviceGetAttribute ||
	    !p_cuDeviceTotalMem_v2 || !p_cuDeviceGetUuid_v2) {
		printf("| CUDA | | | a symbol is missing | | |\n");
		return 1;
	}
	long after_open = rss_kib();

	TIME("CUDA", "cuInit", "process", 1, p_cuInit(0));
	long after_init = rss_kib();
	int v, n = 0, x;
	CUdevice d;
	char buf[96];
	size_t mem;
	CUuuid u;

	TIME("CUDA", "cuDriverGetVersion", "process", REPS, p_cuDriverGetVersion(&v));
	TIME("CUDA", "cuDeviceGetCount", "process", REPS, p_cuDeviceGetCount(&n));
	if (n < 1)
		return 1;
	TIME("CUDA", "cuDeviceGet", "GPU", REPS, p_cuDeviceGet(&d, 0));
	TIME("CUDA", "cuDeviceGetName", "GPU", REPS, p_cuDeviceGetName(buf, sizeof(buf), d));
	TIME("CUDA", "cuDeviceGetPCIBusId", "GPU", REPS,
	     p_cuDeviceGetPCIBusId(buf, sizeof(buf), d));
	TIME("CUDA", "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)", "GPU", REPS,
	     p_cuDeviceGetAttribute(&x, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d));
	TIME("CUDA", "cuDeviceTotalMem_v2", "GPU", REPS, p_cuDeviceTotalMem_v2(&mem, d));
	TIME("CUDA", "cuDeviceGetUuid_v2", "GPU", REPS, p_cuDeviceGetUuid_v2(&u, d));
	printf("| CUDA | resident memory | process | dlopen +%ld KiB, cuInit +%ld KiB | | |\n",
	       after_open - before, after_init - after_open);
	return 0;
}

static int nvml_costs(const char *path)
{
	long before = rss_kib();
	void *h = open_timed("NVML", path);

	if (!h)
		return 1;
	SYM(h, nvmlInit_v2);
	SYM(h, nvmlShutdown);
	SYM(h, nvmlSystemGetDriverVersion);
	SYM(h, nvmlSystemGetCudaDriverVersion_v2);
	SYM(h, nvmlDeviceGetCount_v2);
	SYM(h, nvmlDeviceGetHandleByIndex_v2);
	SYM(h, nvmlDeviceGetUUID);
	SYM(h, nvmlDeviceGetName);
	SYM(h, nvmlDeviceGetPciInfo_v3);
	SYM(h, nvmlDeviceGetMemoryInfo);
	SYM(h, nvmlDeviceGetCudaComputeCapability);
	SYM(h, nvmlDeviceGetSerial);
	SYM(h, nvmlDeviceGetMinorNumber);
	SYM(h, nvmlDeviceGetNumaNodeId);
	SYM(h, nvmlDeviceGetPowerUsage);
	SYM(h, nvmlDeviceGetTemperature);
	SYM(h, nvmlDeviceGetUtilizationRates);
	SYM(h, nvmlDeviceGetTotalEccErrors);
	SYM(h, nvmlDeviceGetMigMode);
	SYM(h, nvmlDeviceGetGpuInstanceProfileInfo);
	SYM(h, nvmlDeviceGetGpuInstanceRemainingCapacity);
	SYM(h, nvmlDeviceGetTopologyCommonAncestor);
	SYM(h, nvmlDeviceGetNvLinkState);
	SYM(h, nvmlDeviceGetMaxMigDeviceCount);
	SYM(h, nvmlEventSetCreate);
	SYM(h, nvmlDeviceGetSupportedEventTypes);
	SYM(h, nvmlDeviceRegisterEvents);
	SYM(h, nvmlEventSetWait_v2);
	SYM(h, nvmlEventSetFree);
	void *all[] = { p_nvmlInit_v2, p_nvmlShutdown, p_nvmlSystemGetDriverVersion,
			p_nvmlSystemGetCudaDriverVersion_v2, p_nvmlDeviceGetCount_v2,
			p_nvmlDeviceGetHandleByIndex_v2, p_nvmlDeviceGetUUID, p_nvmlDeviceGetName,
			p_nvmlDeviceGetPciInfo_v3, p_nvmlDeviceGetMemoryInfo,
			p_nvmlDeviceGetCudaComputeCapability, p_nvmlDeviceGetSerial,
			p_nvmlDeviceGetMinorNumber, p_nvmlDeviceGetNumaNodeId,
			p_nvmlDeviceGetPowerUsage, p_nvmlDeviceGetTemperature,
			p_nvmlDeviceGetUtilizationRates, p_nvmlDeviceGetTotalEccErrors,
			p_nvmlDeviceGetMigMode, p_nvmlDeviceGetGpuInstanceProfileInfo,
			p_nvmlDeviceGetGpuInstanceRemainingCapacity,
			p_nvmlDeviceGetTopologyCommonAncestor, p_nvmlDeviceGetNvLinkState,
			p_nvmlDeviceGetMaxMigDeviceCount, p_nvmlEventSetCreate,
			p_nvmlDeviceGetSupportedEventTypes, p_nvmlDeviceRegisterEvents,
			p_nvmlEventSetWait_v2, p_nvmlEventSetFree };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!all[i]) {
			printf("| NVML | | | symbol %zu is missing | | |\n", i);
			return 1;
		}
	long after_open = rss_kib();

	memory_note("NVML: after dlopen");
	TIME("NVML", "nvmlInit_v2", "process", 1, p_nvmlInit_v2());
	long after_init = rss_kib();
	memory_note("NVML: after nvmlInit_v2");
	malloc_trim(0);
	memory_note("NVML: after nvmlInit_v2 and malloc_trim");
	unsigned int n = 0, u, cur, pend;
	nvmlDevice_t d;
	char buf[96];
	nvmlPciInfo_t pci;
	nvmlMemory_t mem;
	nvmlUtilization_t util;
	int a, b;
	nvmlGpuTopologyLevel_t lvl;
	nvmlEnableState_t st;
	nvmlGpuInstanceProfileInfo_t gip;
	unsigned long long types;
	nvmlEventSet_t set;
	nvmlEventData_t ev;

	TIME("NVML", "nvmlSystemGetDriverVersion", "process", REPS,
	     p_nvmlSystemGetDriverVersion(buf, sizeof(buf)));
	TIME("NVML", "nvmlSystemGetCudaDriverVersion_v2", "process", REPS,
	     p_nvmlSystemGetCudaDriverVersion_v2(&a));
	TIME("NVML", "nvmlDeviceGetCount_v2", "process", REPS, p_nvmlDeviceGetCount_v2(&n));
	if (n < 1)
		return 1;
	TIME("NVML", "nvmlDeviceGetHandleByIndex_v2", "GPU", REPS,
	     p_nvmlDeviceGetHandleByIndex_v2(0, &d));
	TIME("NVML", "nvmlDeviceGetUUID", "GPU", REPS, p_nvmlDeviceGetUUID(d, buf, sizeof(buf)));
	TIME("NVML", "nvmlDeviceGetName", "GPU", REPS, p_nvmlDeviceGetName(d, buf, sizeof(buf)));
	TIME("NVML", "nvmlDeviceGetPciInfo_v3", "GPU", REPS, p_nvmlDeviceGetPciInfo_v3(d, &pci));
	TIME("NVML", "nvmlDeviceGetMemoryInfo", "GPU", REPS, p_nvmlDeviceGetMemoryInfo(d, &mem));
	TIME("NVML", "nvmlDeviceGetCudaComputeCapability", "GPU", REPS,
	     p_nvmlDeviceGetCudaComputeCapability(d, &a, &b));
	TIME("NVML", "nvmlDeviceGetSerial", "GPU", REPS,
	     p_nvmlDeviceGetSerial(d, buf, sizeof(buf)));
	TIME("NVML", "nvmlDeviceGetMinorNumber", "GPU", REPS, p_nvmlDeviceGetMinorNumber(d, &u));
	TIME("NVML", "nvmlDeviceGetNumaNodeId", "GPU", REPS, p_nvmlDeviceGetNumaNodeId(d, &u));
	TIME("NVML", "nvmlDeviceGetPowerUsage", "GPU", REPS, p_nvmlDeviceGetPowerUsage(d, &u));
	TIME("NVML", "nvmlDeviceGetTemperature", "GPU", REPS,
	     p_nvmlDeviceGetTemperature(d, NVML_TEMPERATURE_GPU, &u));
	TIME("NVML", "nvmlDeviceGetUtilizationRates", "GPU", REPS,
	     p_nvmlDeviceGetUtilizationRates(d, &util));
	TIME("NVML", "nvmlDeviceGetTotalEccErrors(volatile)", "GPU", REPS,
	     p_nvmlDeviceGetTotalEccErrors(d, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC,
					   &types));
	TIME("NVML", "nvmlDeviceGetMigMode", "GPU", REPS, p_nvmlDeviceGetMigMode(d, &cur, &pend));
	TIME("NVML", "nvmlDeviceGetGpuInstanceProfileInfo(1g)", "profile", REPS,
	     p_nvmlDeviceGetGpuInstanceProfileInfo(d, NVML_GPU_INSTANCE_PROFILE_1_SLICE, &gip));
	TIME("NVML", "nvmlDeviceGetGpuInstanceRemainingCapacity", "profile", REPS,
	     p_nvmlDeviceGetGpuInstanceRemainingCapacity(d, gip.id, &u));
	TIME("NVML", "nvmlDeviceGetMaxMigDeviceCount", "GPU", REPS,
	     p_nvmlDeviceGetMaxMigDeviceCount(d, &u));
	TIME("NVML", "nvmlDeviceGetTopologyCommonAncestor(self)", "GPU pair", REPS,
	     p_nvmlDeviceGetTopologyCommonAncestor(d, d, &lvl));
	TIME("NVML", "nvmlDeviceGetNvLinkState(link 0)", "link", REPS,
	     p_nvmlDeviceGetNvLinkState(d, 0, &st));
	TIME("NVML", "nvmlEventSetCreate", "process", 1, p_nvmlEventSetCreate(&set));
	TIME("NVML", "nvmlDeviceGetSupportedEventTypes", "GPU", REPS,
	     p_nvmlDeviceGetSupportedEventTypes(d, &types));
	TIME("NVML", "nvmlDeviceRegisterEvents", "GPU", 1,
	     p_nvmlDeviceRegisterEvents(d, types & (nvmlEventTypeXidCriticalError |
						    nvmlEventTypeDoubleBitEccError |
						    nvmlEventMigConfigChange),
					set));
	TIME("NVML", "nvmlEventSetWait_v2(0 ms, no event)", "process", 20,
	     p_nvmlEventSetWait_v2(set, &ev, 0));
	p_nvmlEventSetFree(set);
	memory_note("NVML: after every query");
	TIME("NVML", "nvmlShutdown", "process", 1, p_nvmlShutdown());
	memory_note("NVML: after nvmlShutdown");
	printf("| NVML | resident memory | process | dlopen +%ld KiB, nvmlInit_v2 +%ld KiB | | |\n",
	       after_open - before, after_init - after_open);
	printf("\nGPUs: %u\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	const char *nvml = argc > 1 ? argv[1] : "libnvidia-ml.so.1";
	const char *cuda = argc > 2 ? argv[2] : "libcuda.so.1";
	int status = 0;
	pid_t pid;

	printf("| library | call | per | median µs | max µs | last rc |\n");
	printf("|---|---|---|---:|---:|---:|\n");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		int r = cuda_costs(cuda);

		fflush(stdout);
		_exit(r);
	}
	waitpid(pid, &status, 0);
	return nvml_costs(nvml) || !WIFEXITED(status) || WEXITSTATUS(status);
}
