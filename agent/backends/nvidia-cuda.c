// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend's use of the CUDA driver API: the probe that runs in a child of xpud
 * ("xpud --cuda-probe LIBRARY"), the thread that starts it after the first inventory and reads
 * its answer, and the facts that answer adds to each GPU's record.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/nvidia.h"
#include "backends/nvidia-cuda.h"
#include "backends/nvidia-internal.h"
#include "shared/dlopen-util.h"
#include "shared/parse.h"

static const struct cuda_fact *cuda_fact(const struct nvidia *nv, const char *addr)
{
	if (!atomic_load(&nv->cuda_finished))
		return NULL;
	for (size_t i = 0; i < nv->n_cuda; i++)
		if (streq(nv->cuda[i].addr, addr))
			return &nv->cuda[i];
	return NULL;
}

/* What the CUDA probe found of @d's GPU, once it is done, as properties. 0 or -ENOMEM. */
int nvidia_add_cuda_facts(const struct nvidia *nv, struct xpu_device *d)
{
	const struct cuda_fact *f = cuda_fact(nv, d->id);

	if (!f)
		return 0;
	if (set_prop_u(d, "cuda_ordinal", (unsigned)f->ordinal) < 0 ||
	    (f->multiprocessors > 0 && !device_get_property(d, "multiprocessor_count") &&
	     set_prop_u(d, "multiprocessor_count", (unsigned)f->multiprocessors) < 0) ||
	    (f->max_threads_per_sm > 0 &&
	     set_prop_u(d, "max_threads_per_multiprocessor", (unsigned)f->max_threads_per_sm) <
		     0) ||
	    (f->l2_bytes > 0 && set_prop_u(d, "l2_cache_bytes", (unsigned)f->l2_bytes) < 0) ||
	    (f->clock_khz > 0 && set_prop_u(d, "max_clock_mhz", (unsigned)f->clock_khz / 1000) < 0))
		return -ENOMEM;
	return 0;
}

/*
 * The CUDA probe, run as "xpud --cuda-probe LIBRARY" in a short-lived child: loading libcuda and
 * cuInit keep ~7 MiB resident (H100, driver 580; docs/performance.md) and threads of their own,
 * which a daemon that aims at a few MiB must not carry. Prints "init_ms N" or "error TEXT", then one "gpu ADDR ORDINAL SMS THREADS L2 CLOCK"
 * line per device. Returns the exit status.
 */
int nvidia_cuda_probe_main(const char *library, FILE *out)
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
	static const CUdevice_attribute attrs[] = {
		CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
		CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR,
		CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
		CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
	};
	_cleanup_free_ char *reason = NULL;
	struct timespec t0, t1;
	void *dl = NULL;
	int count = 0;
	CUresult r;

	if (dlopen_many(library, syms, ELEMENTSOF(syms), &dl, &reason) < 0) {
		fprintf(out, "error %s\n", reason ?: library);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = cu.init(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r != CUDA_SUCCESS || cu.count(&count) != CUDA_SUCCESS) {
		fprintf(out, "error cuInit failed (CUDA error %d)\n", r);
		return 1;
	}
	fprintf(out, "init_ms %ld\n",
		(long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	for (int i = 0; i < count; i++) {
		int v[ELEMENTSOF(attrs)];
		char bus[32], addr[13];
		CUdevice dev;

		if (cu.get(&dev, i) != CUDA_SUCCESS ||
		    cu.bus_id(bus, (int)sizeof(bus), dev) != CUDA_SUCCESS ||
		    parse_pci_address(bus, addr) < 0)
			continue;
		for (size_t k = 0; k < ELEMENTSOF(attrs); k++)
			if (cu.attribute(&v[k], attrs[k], dev) != CUDA_SUCCESS || v[k] < 0)
				v[k] = 0;
		fprintf(out, "gpu %s %d %d %d %d %d\n", addr, i, v[0], v[1], v[2], v[3]);
	}
	return fflush(out) == 0 ? 0 : 1;
}

/* Parses the probe's answer into nv->cuda[] (or nv->cuda_error). */
static void cuda_parse(struct nvidia *nv, char *text)
{
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct cuda_fact f = {};
		char addr[16];

		if (strncmp(line, "error ", 6) == 0 && !nv->cuda_error) {
			nv->cuda_error = strdup(line + 6);
		} else if (sscanf(line, "init_ms %ld", &nv->cuda_init_ms) == 1) {
			continue;
		} else if (nv->n_cuda < NVML_MAX_GPUS &&
			   sscanf(line, "gpu %15s %d %d %d %d %d", addr, &f.ordinal,
				  &f.multiprocessors, &f.max_threads_per_sm, &f.l2_bytes,
				  &f.clock_khz) == 6 &&
			   parse_pci_address(addr, f.addr) >= 0) {
			nv->cuda[nv->n_cuda++] = f;
		}
	}
	if (!nv->cuda_error && nv->cuda_init_ms == 0 && nv->n_cuda == 0)
		nv->cuda_error = strdup("the CUDA probe gave no answer");
}

/* Runs the probe in a child and reads its answer (30 s at most). Own thread. */
void *nvidia_cuda_thread(void *userdata)
{
	struct nvidia *nv = userdata;
	struct nvidia_event done = { .cuda_done = true };
	char *argv[] = { (char *)"xpud", (char *)"--cuda-probe", nv->cuda_path, NULL };
	posix_spawn_file_actions_t fa;
	char buf[16384];
	size_t len = 0;
	int fds[2], status;
	pid_t pid = -1;
	long long deadline;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		nv->cuda_error = strdup("cannot create a pipe for the CUDA probe");
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	if (posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		nv->cuda_error = strdup("cannot start the CUDA probe");
		goto out;
	}
	deadline = 30000;
	while (len < sizeof(buf) - 1 && deadline > 0) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 100) == 0) {
			deadline -= 100;
			continue;
		}
		k = read(fds[0], buf + len, sizeof(buf) - 1 - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fds[0]);
	if (deadline <= 0)
		kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	buf[len] = '\0';
	cuda_parse(nv, buf);
out:
	atomic_store(&nv->cuda_finished, true);
	nvidia_event_send(nv, &done);
	return NULL;
}
