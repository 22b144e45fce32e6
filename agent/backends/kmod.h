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

/*
 * Reads one message of the generic netlink controller ("nlctrl": the answer to a
 * CTRL_CMD_GETFAMILY, or a notification of its "notify" group) about family @name. Returns 0
 * with the controller's command (CTRL_CMD_NEWFAMILY, CTRL_CMD_DELFAMILY, CTRL_CMD_NEWMCAST_GRP,
 * ...) in *ret_cmd, the family's id in *ret_family and the id of its multicast group @group in
 * *ret_group (0 when the message does not name that group); -ENOENT when the message is not
 * the controller's or is about another family; -EBADMSG when it is malformed. Does not log.
 */
int kmod_parse_family(struct nlmsghdr *h, const char *name, const char *group, int *ret_cmd,
		      int *ret_family, int *ret_group);

struct xpu_backend;

/*
 * Sets up @b as the kmod backend's probe would, over sockets the caller connected (tests):
 * @req for requests (blocking, with a receive timeout), @events (non-blocking) for the module's
 * events and the controller's notifications, the family id @family and @events already a
 * member of the events group @group. Takes ownership of both sockets, also on failure.
 * Returns 0 or -ENOMEM. Does not log.
 */
int kmod_backend_setup(struct xpu_backend *b, struct nl_sock *req, struct nl_sock *events,
		       int family, int group);
