/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The xpu_pci kernel module's backend (kmod.c): its message mapping, exposed for unit tests.
 */
#pragma once

#include <linux/netlink.h>

#include "core/device.h"

/*
 * Maps one message of the "xpu" generic netlink family (a GET_DEVICE reply or an event) to a
 * device record. @resource overrides the default resource name (NULL: the default). Returns 0
 * and the command in *ret_cmd and an owned device in *ret; -EBADMSG when the message is
 * malformed or lacks the index, PCI address or health; -ENODEV when it describes a removed
 * device (*ret_cmd is set then too); -ENOMEM. Does not log.
 */
int kmod_parse_message(struct nlmsghdr *h, const char *resource, int *ret_cmd,
		       struct xpu_device **ret);

/* The default resource name of a function xpu_pci drives: "xpu.dev/edu" for QEMU's edu device,
 * "xpu.dev/pci-<vendor>-<device>" (hex) otherwise. Returns a malloc'd string or NULL. */
char *kmod_default_resource(uint16_t vendor, uint16_t device);
