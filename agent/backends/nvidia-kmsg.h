/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The NVIDIA kernel module's XID reports, as the kernel log carries them: the message of one
 * /dev/kmsg record (shared/kmsg.h). The driver prints, since 515 (open-gpu-kernel-modules,
 * src/nvidia/src/kernel/gpu/rc/kernel_rc.c, krcReportXid):
 *
 *   NVRM: Xid (PCI:DDDD:BB:DD[ GPU-I:GG[ GPU-CI:CC]]): XID, [pid=PID, ][name=NAME, ]TEXT
 *
 * with "pid='<unknown>', name=<unknown>, " for an error no process owns (515-565; 570 and later
 * leave both out), and " caused by previous Xid N" after TEXT (570.124 and later, on Xid 45). Older
 * drivers print the same without "GPU-I:" (no MIG), "PCI:" (304 and before) or "pid=".
 * tests/fixtures/kmsg/xid-lines.txt holds the real lines, with where each came from.
 *
 * Pure parsing of untrusted bytes: no allocation, no logging, nothing read past @len.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct nvidia_xid_line {
	char pci[13]; /* the GPU, canonical: "0000:3b:00.0" (the driver prints no function) */
	unsigned xid;
	bool has_gi; /* the error is the MIG GPU instance's @gi ... */
	bool has_ci; /* ... and its compute instance @ci's */
	unsigned gi, ci;
	int pid;          /* -1: none printed, or "'<unknown>'" */
	char process[64]; /* "" when none; non-printable bytes as '?', truncated */
	unsigned cause;   /* the XID this one follows from ("caused by previous Xid N"), or 0 */
	char text[256];   /* the rest: the driver's words for it; as @process */
};

/*
 * Parses @msg[0..@len) (not NUL-terminated). Returns 0 and fills *@ret; -ENOMSG when the message
 * is not an XID report (it does not start with "NVRM: Xid "); -EBADMSG for one it cannot read
 * (cut short, an address that is not a PCI address, a number that does not fit). Does not log.
 */
int nvidia_kmsg_parse_xid(const char *msg, size_t len, struct nvidia_xid_line *ret);
