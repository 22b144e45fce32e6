// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * xpud-helper: the process that loads a vendor runtime for xpud, which never loads one itself
 * (docs/architecture.md, "Helpers"). xpud starts it with a deadline and resource limits for one
 * request and reads its answer, in the helper protocol (core/helper-proto.h), from its standard
 * output; whatever the vendor library itself prints there goes to standard error instead.
 *
 *   xpud-helper [--root DIR] nvml LIBRARY enumerate
 *   xpud-helper [--root DIR] nvml LIBRARY apply ADDRESS [--enable] PROFILE...
 *   xpud-helper [--root DIR] nvml LIBRARY processes ADDRESS
 *   xpud-helper cuda LIBRARY
 *   xpud-helper xrt LIBRARY enumerate
 *
 * Exit status 0 when the answer was written (also when it says the runtime failed), 2 for a usage
 * error, 1 when the answer could not be written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/helper-proto.h"
#include "runtimes/nvml.h"
#include "runtimes/xrt.h"
#include "shared/host.h"
#include "shared/macro.h"
#include "shared/strv.h"

static int usage(void)
{
	fputs("Usage: xpud-helper [--root DIR] nvml LIBRARY enumerate|processes ADDRESS|\n"
	      "                   apply ADDRESS [--enable] PROFILE...\n"
	      "       xpud-helper cuda LIBRARY\n"
	      "       xpud-helper xrt LIBRARY enumerate\n"
	      "Run by xpud: it answers in the helper protocol on standard output.\n",
	      stderr);
	return 2;
}

/* The request after "nvml LIBRARY", with NVML loaded. */
static int nvml_request(struct nvml_session *s, char **args, int n, FILE *out)
{
	char addr[13];

	if (n >= 1 && streq(args[0], "enumerate") && n == 1) {
		_cleanup_strv_free_ char **facts = NULL;
		char v[16];

		snprintf(v, sizeof(v), "%d", s->cuda_version);
		if (strv_extend(&facts, "driver_version") < 0 ||
		    strv_extend(&facts, s->driver_version) < 0 ||
		    strv_extend(&facts, "cuda_version") < 0 || strv_extend(&facts, v) < 0)
			return -ENOMEM;
		return helper_emit(out, helper_msg_hello("nvml", facts)) ?: nvml_enumerate(s, out);
	}
	if (n == 2 && streq(args[0], "processes") && parse_pci_address(args[1], addr) >= 0)
		return nvml_processes(s, addr, out);
	if (n >= 2 && streq(args[0], "apply") && parse_pci_address(args[1], addr) >= 0) {
		struct offer o = { .kind = OFFER_PARTITIONS };
		int i = 2, r;

		if (i < n && streq(args[i], "--enable")) {
			o.enable = true;
			i++;
		}
		for (; i < n; i++)
			if (strv_extend(&o.layout, args[i]) < 0) {
				strv_free(o.layout);
				return -ENOMEM;
			}
		r = nvml_apply(s, addr, &o, out);
		strv_free(o.layout);
		return r;
	}
	return -EINVAL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct xpu_host *, host_free);

int main(int argc, char **argv)
{
	_cleanup_(host_freep) struct xpu_host *host = NULL;
	const char *root = "/";
	FILE *out;
	int fd, i = 1, r;

	/* The answer goes to the original standard output; a library's own printing does not. */
	fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		return 1;
	out = fdopen(fd, "w");
	if (!out)
		return 1;
	if (i + 1 < argc && streq(argv[i], "--root")) {
		root = argv[i + 1];
		i += 2;
	}
	if (argc - i == 2 && streq(argv[i], "cuda"))
		return cuda_probe_main(argv[i + 1], out);
	if (argc - i == 3 && streq(argv[i], "xrt") && streq(argv[i + 2], "enumerate")) {
		r = xrt_enumerate_main(argv[i + 1], out);
		if (r >= 0)
			r = helper_emit(out, helper_msg_end());
		if (r < 0 || fclose(out) != 0)
			return 1;
		/* XRT's static destructors may wait on the driver: the answer is out already */
		_exit(0);
	}
	if (argc - i < 3 || !streq(argv[i], "nvml"))
		return usage();

	r = host_open(root, &host);
	if (r < 0) {
		fprintf(stderr, "xpud-helper: cannot open the host root %s: %s\n", root, strerror(-r));
		return 1;
	}
	struct nvml_session s;
	_cleanup_free_ char *reason = NULL;
	bool unavailable;

	r = nvml_open(&s, argv[i + 1], host, &reason, &unavailable);
	if (r < 0)
		r = helper_emit(out, helper_msg_error(r, unavailable, reason ?: "cannot load NVML"));
	else {
		r = nvml_request(&s, argv + i + 2, argc - i - 2, out);
		if (r == -EINVAL)
			return usage();
		nvml_close(&s);
	}
	if (r >= 0)
		r = helper_emit(out, helper_msg_end());
	if (r < 0 || fclose(out) != 0)
		return 1;
	/* a query thread may still be inside NVML: do not wait for it */
	_exit(0);
}
