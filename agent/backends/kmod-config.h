/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kmod backend's section of xpud.yaml (devices of the xpu_pci kernel module):
 *
 *   kmod:
 *     resource: example.com/accel
 *
 * The old top-level spelling (kmod-resource) is still read, with a warning. Pure: parsing only.
 */
#pragma once

#include "core/config.h"

struct kmod_config {
	char *resource; /* resource of xpu_pci's devices; NULL: "xpu.dev/edu" for edu, else
			 * "xpu.dev/pci-<vendor>-<device>" */
};

extern const struct config_section kmod_config_section;

/* The section as @c holds it (borrowed), or the defaults when @c is NULL or has none. Never
 * NULL. */
const struct kmod_config *kmod_config_get(const struct config *c);
