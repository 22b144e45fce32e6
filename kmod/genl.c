// SPDX-License-Identifier: GPL-2.0-only
/*
 * The generic netlink family "xpu": GET_DEVICE (one by index or PCI address, or a dump of all)
 * and the "events" multicast group (added, removed, health changed). Requests are validated
 * strictly against the policy: unknown attributes, wrong types and oversized strings are
 * refused by the netlink core before a handler runs.
 */
#include <net/genetlink.h>

#include "xpu.h"

static const struct nla_policy xpu_genl_policy[XPU_A_MAX + 1] = {
	[XPU_A_INDEX] = { .type = NLA_U32 },
	[XPU_A_PCI_ADDR] = { .type = NLA_NUL_STRING, .len = XPU_PCI_ADDR_LEN - 1 },
};

static const struct genl_multicast_group xpu_genl_mcgrps[] = {
	{ .name = XPU_GENL_MCGRP_EVENTS },
};

static struct genl_family xpu_genl_family;

static int xpu_genl_fill(struct sk_buff *skb, struct xpu_dev *xd, u32 portid, u32 seq,
			 int flags, u8 cmd)
{
	char devname[16];
	void *hdr;
	u8 health;
	char reason[XPU_HEALTH_REASON_LEN];

	hdr = genlmsg_put(skb, portid, seq, &xpu_genl_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	mutex_lock(&xd->health_lock);
	health = xd->health;
	strscpy(reason, xd->health_reason, sizeof(reason));
	mutex_unlock(&xd->health_lock);
	snprintf(devname, sizeof(devname), "xpu/%d", xd->index);

	if (nla_put_u32(skb, XPU_A_INDEX, xd->index) ||
	    nla_put_string(skb, XPU_A_PCI_ADDR, xd->addr) ||
	    nla_put_u16(skb, XPU_A_VENDOR, xd->vendor) ||
	    nla_put_u16(skb, XPU_A_DEVICE, xd->device) ||
	    nla_put_u8(skb, XPU_A_HEALTH, health) ||
	    (health != XPU_PCI_HEALTH_OK && reason[0] &&
	     nla_put_string(skb, XPU_A_HEALTH_REASON, reason)) ||
	    (xd->is_edu && nla_put_u32(skb, XPU_A_ID_REG, xd->id_reg)) ||
	    nla_put_s32(skb, XPU_A_NUMA_NODE, dev_to_node(&xd->pdev->dev)) ||
	    nla_put_string(skb, XPU_A_DEVNAME, devname) ||
	    nla_put_u64_64bit(skb, XPU_A_BAR0_SIZE, pci_resource_len(xd->pdev, 0), XPU_A_PAD) ||
	    nla_put_u32(skb, XPU_A_OPEN_COUNT, atomic_read(&xd->open_count)) ||
	    nla_put_u32(skb, XPU_A_LIVENESS_FAILURES, atomic_read(&xd->liveness_failures)) ||
	    nla_put_u64_64bit(skb, XPU_A_AER_NONFATAL, atomic64_read(&xd->aer[0]), XPU_A_PAD) ||
	    nla_put_u64_64bit(skb, XPU_A_AER_FATAL, atomic64_read(&xd->aer[1]), XPU_A_PAD)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

static int xpu_genl_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct xpu_dev *xd, *found = NULL;
	struct sk_buff *msg;
	int r;

	if (!info->attrs[XPU_A_INDEX] && !info->attrs[XPU_A_PCI_ADDR]) {
		GENL_SET_ERR_MSG(info, "XPU_A_INDEX or XPU_A_PCI_ADDR is required");
		return -EINVAL;
	}
	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	mutex_lock(&xpu_devices_lock);
	list_for_each_entry(xd, &xpu_devices, node) {
		if (info->attrs[XPU_A_INDEX] &&
		    nla_get_u32(info->attrs[XPU_A_INDEX]) != (u32)xd->index)
			continue;
		if (info->attrs[XPU_A_PCI_ADDR] &&
		    nla_strcmp(info->attrs[XPU_A_PCI_ADDR], xd->addr))
			continue;
		found = xd;
		break;
	}
	r = found ? xpu_genl_fill(msg, found, info->snd_portid, info->snd_seq, 0,
				  XPU_CMD_GET_DEVICE) : -ENODEV;
	mutex_unlock(&xpu_devices_lock);
	if (r) {
		if (r == -ENODEV)
			GENL_SET_ERR_MSG(info, "no such xpu device");
		nlmsg_free(msg);
		return r;
	}
	return genlmsg_reply(msg, info);
}

static int xpu_genl_get_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct xpu_dev *xd;
	long skip = cb->args[0], i = 0;
	int r = 0;

	mutex_lock(&xpu_devices_lock);
	list_for_each_entry(xd, &xpu_devices, node) {
		if (i++ < skip)
			continue;
		r = xpu_genl_fill(skb, xd, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
				  NLM_F_MULTI, XPU_CMD_GET_DEVICE);
		if (r) {
			i--;
			break;
		}
	}
	mutex_unlock(&xpu_devices_lock);
	cb->args[0] = i;
	/*
	 * 0 at the end of the list: the netlink core then puts NLMSG_DONE into this same buffer
	 * and ends the dump now. Returning the length would end it only when the requester reads
	 * again, and until then the dump holds a reference to this module (rmmod fails with
	 * EAGAIN while a client that asked for a dump has not read all of it).
	 */
	if (!r)
		return 0;
	/* a message that does not fit an empty buffer would loop forever: report it */
	return skb->len ?: r;
}

static const struct genl_small_ops xpu_genl_ops[] = {
	{
		.cmd = XPU_CMD_GET_DEVICE,
		.doit = xpu_genl_get_doit,
		.dumpit = xpu_genl_get_dumpit,
	},
};

static struct genl_family xpu_genl_family __ro_after_init = {
	.name = XPU_GENL_NAME,
	.version = XPU_GENL_VERSION,
	.maxattr = XPU_A_MAX,
	.policy = xpu_genl_policy,
	.netnsok = false,
	.module = THIS_MODULE,
	.small_ops = xpu_genl_ops,
	.n_small_ops = ARRAY_SIZE(xpu_genl_ops),
	.mcgrps = xpu_genl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(xpu_genl_mcgrps),
};

void xpu_genl_notify(struct xpu_dev *xd, u8 cmd)
{
	struct sk_buff *skb;

	skb = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!skb)
		return;
	if (xpu_genl_fill(skb, xd, 0, 0, 0, cmd)) {
		nlmsg_free(skb);
		return;
	}
	/* -ESRCH when nobody listens: not an error */
	genlmsg_multicast(&xpu_genl_family, skb, 0, 0, GFP_KERNEL);
}

int xpu_genl_init(void)
{
	return genl_register_family(&xpu_genl_family);
}

void xpu_genl_exit(void)
{
	genl_unregister_family(&xpu_genl_family);
}
