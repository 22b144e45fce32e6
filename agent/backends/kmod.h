/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The xpu_pci kernel module's backend (kmod.c): its message mapping and its reading of the
 * module's answers, exposed for unit tests.
 */
#pragma once

#include <linux/netlink.h>
#include <stdint.h>

#include "core/device.h"

struct nl_msg;
struct nl_sock;

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

/*
 * Reads the answer to the request numbered @seq from the request socket @sk: each of its data
 * messages goes to @on_msg (called as libnl's NL_CB_VALID), messages left over from earlier
 * requests are dropped, and it returns only once the answer is complete (the acknowledgement
 * that ends a GET sent with NLM_F_ACK, the NLMSG_DONE that ends a dump), so that nothing of it
 * is left for the next request to mistake for its own. Returns 0; the error the kernel
 * answered (negative errno, e.g. -ENODEV); -EAGAIN when the socket's receive timeout passes
 * first; -ENOMEM; -EIO for other socket failures. Does not log.
 */
int kmod_read_answer(struct nl_sock *sk, uint32_t seq, int (*on_msg)(struct nl_msg *, void *),
		     void *userdata);
