/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Strict parsers for the text the kernel and clients hand us. Each one accepts the whole string
 * or nothing: no leading whitespace, no trailing garbage, no silent overflow. Returns 0 and writes
 * *ret on success; -EINVAL for malformed input, -ERANGE for out-of-range values. Never logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int safe_atoi(const char *s, int *ret);
int safe_atou(const char *s, unsigned *ret);
int safe_atou64(const char *s, uint64_t *ret);
/* Hexadecimal with an optional "0x"/"0X" prefix, as in sysfs's vendor/device/class files. */
int safe_atoux64(const char *s, uint64_t *ret);
/* A hexadecimal id no larger than @max (0xffff for PCI ids, 0xffffff for class codes). */
int parse_hex_id(const char *s, uint32_t max, uint32_t *ret);

/*
 * PCIe link speed as sysfs prints it: "32.0 GT/s PCIe", "8.0 GT/s PCIe", older kernels "8 GT/s".
 * Returns the speed in MT/s (32000 for 32.0 GT/s); -ENODATA for "Unknown".
 */
int parse_pcie_link_speed(const char *s, unsigned *ret_mts);

/*
 * A kernel CPU list such as "0-55,112-167". Returns the number of CPUs it names (>= 1) and
 * rejects reversed ranges, empty elements and CPU numbers above 65535.
 */
int parse_cpu_list(const char *s, unsigned *ret_count);

/* A PCI address "DDDD:BB:DD.F" (domain optional on input); writes the canonical 12-char form. */
int parse_pci_address(const char *s, char ret[static 13]);
/* The last element of the path @path that is a PCI address ("/devices/pci0000:00/0000:00:02.0/drm/
 * card1" -> 0000:00:02.0), canonical. 0, -ENOENT when none is, -ENOMEM. */
int path_pci_address(const char *path, char ret[static 13]);

/* Strips trailing whitespace in place and returns @s. */
char *strstrip_trailing(char *s);
/* True when @s is non-empty and consists of printable ASCII only. */
bool string_is_printable(const char *s);
/*
 * Copies @s into @buf (@size > 0 bytes) as one line of valid UTF-8 that a JSON document can
 * carry and a terminal can show: a byte that does not begin a valid UTF-8 sequence (RFC 3629)
 * and an ASCII control character are written as the text "\xHH", and what does not fit is
 * left out at a character boundary, so a multi-byte character is never cut. Returns @buf.
 */
char *utf8_escape_invalid(const char *s, char *buf, size_t size);

/* "30s", "500ms", "2m", or a plain number of seconds. 0 or -EINVAL/-ERANGE. */
int parse_duration(const char *s, uint64_t *ret_usec);

/* "10GiB", "512MiB", "4096B"; units B, KiB, MiB, GiB, TiB (K, M, G, T: the same, binary). A
 * unit is required. 0, -EINVAL or -ERANGE. */
int parse_size(const char *s, uint64_t *ret_bytes);
