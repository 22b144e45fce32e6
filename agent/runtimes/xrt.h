/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * XRT in the helper process ("xpud-helper xrt LIBRARY enumerate", agent/xpud-helper.c), never in
 * xpud: the shim library (libxrt_core.so.2, or libxrt_swemu.so.2 for software emulation) is
 * loaded with dlopen, every device below xclProbe()'s count is opened and described, and the
 * answer is written in the helper protocol (core/helper-proto.h). docs/architecture.md, "The XRT
 * backend".
 */
#pragma once

#include <stdio.h>

/* Emulation (XCL_EMULATION_MODE=sw_emu): the directory of emconfig.json, from EMCONFIG_PATH. */
#define XRT_EMULATION_ENV "XCL_EMULATION_MODE"
#define XRT_EMCONFIG_ENV "EMCONFIG_PATH"
#define XRT_MAX_DEVICES 64
/* The most compute units of one card reported (XRT's own limit is 128). */
#define XRT_MAX_COMPUTE_UNITS 128

/*
 * Writes XRT's answer for "enumerate" to @out: a hello (the library, the emulation mode), one
 * device message per device (a failure message for one XRT cannot open or describe), or an error
 * message (unavailable when the library cannot be loaded). Does not write "end". 0, or -errno
 * when @out could not be written.
 */
int xrt_enumerate_main(const char *library, FILE *out);
