// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Devices driven by our kernel module xpu_pci, from its generic netlink family "xpu"
 * (include/xpu/uapi/xpu_pci.h): a dump at each enumeration, a GET per health refresh, and the
 * "events" multicast group in the daemon's loop (added and removed ask for a rescan, health
 * changes become health updates). While the module is not loaded the backend lists nothing and
 * says why (its reason), and takes the module's devices when it is loaded.
 * The same socket hears the generic netlink controller's notifications: a module that is
 * unloaded and loaded again gets a new family id and starts with no members in its groups, so
 * the backend looks the family up again, joins the new "events" group and asks for a rescan
 * (and a request that finds the old id gone does the same, should a notification be lost).
 * The module sends a function's NUMA node but not its CPUs: those come from sysfs
 * (local_cpulist), as the generic PCI backend reads them.
 * Priority 20: its record of a function wins over the generic PCI backend's, whose checks
 * (config space, AER, device nodes) still apply through the merge rule.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "backends/backend.h"
#include "backends/kmod.h"
#include "backends/pci.h"
#include "backends/kmod-config.h"
#include "shared/bounded.h"
#include "shared/fileio.h"
#include "shared/host.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "xpu/uapi/xpu_pci.h"

#define KMOD_PRIORITY 20
#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define KMOD_RESET_TIMEOUT_USEC (10 * 1000000ULL)

struct kmod {
	struct nl_sock *req;	/* GET and DUMP, blocking with a receive timeout */
	/* non-blocking: the module's "events" group and the controller's "notify" group */
	struct nl_sock *events;
	int family;		/* 0: unknown, the module was unloaded */
	int group;		/* the "events" group @events is a member of; 0: none */
	/* borrowed, read at each use: a reload replaces what it holds (kmod: {resource: }) */
	const struct config *config;
};

static struct nla_policy kmod_policy[XPU_A_MAX + 1] = {
	[XPU_A_INDEX] = { .type = NLA_U32 },
	[XPU_A_PCI_ADDR] = { .type = NLA_STRING, .maxlen = XPU_PCI_ADDR_LEN },
	[XPU_A_VENDOR] = { .type = NLA_U16 },
	[XPU_A_DEVICE] = { .type = NLA_U16 },
	[XPU_A_HEALTH] = { .type = NLA_U8 },
	[XPU_A_HEALTH_REASON] = { .type = NLA_STRING, .maxlen = XPU_HEALTH_REASON_LEN },
	[XPU_A_ID_REG] = { .type = NLA_U32 },
	[XPU_A_NUMA_NODE] = { .type = NLA_U32 },
	[XPU_A_DEVNAME] = { .type = NLA_STRING, .maxlen = 32 },
	[XPU_A_BAR0_SIZE] = { .type = NLA_U64 },
	[XPU_A_OPEN_COUNT] = { .type = NLA_U32 },
	[XPU_A_LIVENESS_FAILURES] = { .type = NLA_U32 },
	[XPU_A_AER_NONFATAL] = { .type = NLA_U64 },
	[XPU_A_AER_FATAL] = { .type = NLA_U64 },
};

/* libnl's NLE_* codes as -errno, for the few that can happen here. */
static int kmod_errno(int nle)
{
	switch (nle < 0 ? -nle : nle) {
	case 0:
		return 0;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NODEV:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_INVAL:
	case NLE_RANGE:
	case NLE_MSG_TRUNC:
	case NLE_MSG_TOOSHORT:
		return -EBADMSG;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

char *kmod_default_resource(uint16_t vendor, uint16_t device)
{
	char *s;

	if (vendor == EDU_VENDOR && device == EDU_DEVICE)
		return strdup("xpu.dev/edu");
	if (asprintf(&s, "xpu.dev/pci-%04x-%04x", vendor, device) < 0)
		return NULL;
	return s;
}

static int set_prop_u64(struct xpu_device *d, const char *key, bool hex, unsigned long long v)
{
	char buf[32];

	if (hex)
		snprintf(buf, sizeof(buf), "0x%08llx", v);
	else
		snprintf(buf, sizeof(buf), "%llu", v);
	return device_set_property(d, key, buf);
}

int kmod_parse_message(struct nlmsghdr *h, const char *resource, int *ret_cmd,
		       struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	struct nlattr *tb[XPU_A_MAX + 1];
	_cleanup_free_ char *dev_path = NULL;
	char addr[13];
	const char *name;
	uint8_t health;
	int cmd, r;

	if (genlmsg_parse(h, 0, tb, XPU_A_MAX, kmod_policy) < 0)
		return -EBADMSG;
	if (!tb[XPU_A_INDEX] || !tb[XPU_A_PCI_ADDR] || !tb[XPU_A_HEALTH])
		return -EBADMSG;
	if (parse_pci_address(nla_get_string(tb[XPU_A_PCI_ADDR]), addr) < 0)
		return -EBADMSG;
	cmd = ((struct genlmsghdr *)nlmsg_data(h))->cmd;
	health = nla_get_u8(tb[XPU_A_HEALTH]);
	if (health > XPU_PCI_HEALTH_REMOVED)
		return -EBADMSG;
	if (health == XPU_PCI_HEALTH_REMOVED || cmd == XPU_CMD_DEVICE_REMOVED) {
		*ret_cmd = cmd;
		return -ENODEV;
	}

	d = device_new();
	if (!d)
		return -ENOMEM;
	d->kind = XPU_KIND_ACCEL;
	d->has_pci = true;
	memcpy(d->pci.address, addr, sizeof(addr));
	if (tb[XPU_A_VENDOR])
		d->pci.vendor_id = nla_get_u16(tb[XPU_A_VENDOR]);
	if (tb[XPU_A_DEVICE])
		d->pci.device_id = nla_get_u16(tb[XPU_A_DEVICE]);
	if (tb[XPU_A_NUMA_NODE])
		d->numa_node = (int32_t)nla_get_u32(tb[XPU_A_NUMA_NODE]);
	if (d->numa_node < -1)
		d->numa_node = -1;
	if (device_set_string(&d->id, addr) < 0 || device_set_string(&d->driver, "xpu_pci") < 0)
		return -ENOMEM;
	if (d->pci.vendor_id == EDU_VENDOR && d->pci.device_id == EDU_DEVICE &&
	    (device_set_string(&d->vendor, "qemu") < 0 ||
	     device_set_string(&d->model, "QEMU edu") < 0))
		return -ENOMEM;
	d->resource = resource ? strdup(resource)
			       : kmod_default_resource(d->pci.vendor_id, d->pci.device_id);
	if (!d->resource)
		return -ENOMEM;

	/* the node name comes from the kernel; accept only what its devnode callback makes */
	name = tb[XPU_A_DEVNAME] ? nla_get_string(tb[XPU_A_DEVNAME]) : NULL;
	if (name && (strncmp(name, "xpu/", 4) != 0 || strchr(name + 4, '/') || strstr(name, "..")))
		return -EBADMSG;
	if (name) {
		dev_path = host_dev_path(name);
		if (!dev_path)
			return -ENOMEM;
		d->device_nodes = calloc(2, sizeof(char *));
		if (!d->device_nodes)
			return -ENOMEM;
		d->device_nodes[0] = TAKE_PTR(dev_path);
	}

	r = set_prop_u64(d, "xpu_pci_index", false, nla_get_u32(tb[XPU_A_INDEX]));
	if (r >= 0 && tb[XPU_A_ID_REG])
		r = set_prop_u64(d, "id_register", true, nla_get_u32(tb[XPU_A_ID_REG]));
	if (r >= 0 && tb[XPU_A_LIVENESS_FAILURES])
		r = set_prop_u64(d, "liveness_failures", false,
				 nla_get_u32(tb[XPU_A_LIVENESS_FAILURES]));
	if (r >= 0 && tb[XPU_A_AER_FATAL])
		r = set_prop_u64(d, "aer_fatal", false, nla_get_u64(tb[XPU_A_AER_FATAL]));
	if (r >= 0 && tb[XPU_A_AER_NONFATAL])
		r = set_prop_u64(d, "aer_nonfatal", false, nla_get_u64(tb[XPU_A_AER_NONFATAL]));
	if (r < 0)
		return r;

	/* "unknown" is a device bound a moment ago, before its first probe: not a fault */
	if (health == XPU_PCI_HEALTH_UNHEALTHY) {
		const char *why = tb[XPU_A_HEALTH_REASON] ? nla_get_string(tb[XPU_A_HEALTH_REASON])
							   : NULL;

		/* a failed liveness probe or a fatal PCIe error: what a reset is for */
		r = device_set_fault(d, HEALTH_ACTION_RESET_DEVICE, "xpu_pci: %s",
				     why && *why ? why : "unhealthy");
		if (r < 0)
			return r;
	}
	*ret_cmd = cmd;
	*ret = TAKE_PTR(d);
	return 0;
}

static struct nla_policy ctrl_policy[CTRL_ATTR_MAX + 1] = {
	[CTRL_ATTR_FAMILY_ID] = { .type = NLA_U16 },
	[CTRL_ATTR_FAMILY_NAME] = { .type = NLA_STRING, .maxlen = GENL_NAMSIZ },
	[CTRL_ATTR_MCAST_GROUPS] = { .type = NLA_NESTED },
};

static struct nla_policy ctrl_group_policy[CTRL_ATTR_MCAST_GRP_MAX + 1] = {
	[CTRL_ATTR_MCAST_GRP_NAME] = { .type = NLA_STRING, .maxlen = GENL_NAMSIZ },
	[CTRL_ATTR_MCAST_GRP_ID] = { .type = NLA_U32 },
};

int kmod_parse_family(struct nlmsghdr *h, const char *name, const char *group, int *ret_cmd,
		      int *ret_family, int *ret_group)
{
	struct nlattr *tb[CTRL_ATTR_MAX + 1], *g;
	int rem, id = 0;

	if (h->nlmsg_type != GENL_ID_CTRL)
		return -ENOENT;
	if (genlmsg_parse(h, 0, tb, CTRL_ATTR_MAX, ctrl_policy) < 0)
		return -EBADMSG;
	if (!tb[CTRL_ATTR_FAMILY_NAME] || !tb[CTRL_ATTR_FAMILY_ID])
		return -EBADMSG;
	if (strcmp(nla_get_string(tb[CTRL_ATTR_FAMILY_NAME]), name) != 0)
		return -ENOENT;
	if (tb[CTRL_ATTR_MCAST_GROUPS]) {
		nla_for_each_nested(g, tb[CTRL_ATTR_MCAST_GROUPS], rem) {
			struct nlattr *gtb[CTRL_ATTR_MCAST_GRP_MAX + 1];

			if (nla_parse_nested(gtb, CTRL_ATTR_MCAST_GRP_MAX, g, ctrl_group_policy) < 0)
				return -EBADMSG;
			if (!gtb[CTRL_ATTR_MCAST_GRP_NAME] || !gtb[CTRL_ATTR_MCAST_GRP_ID])
				return -EBADMSG;
			if (strcmp(nla_get_string(gtb[CTRL_ATTR_MCAST_GRP_NAME]), group) == 0)
				id = (int)nla_get_u32(gtb[CTRL_ATTR_MCAST_GRP_ID]);
		}
	}
	if (id < 0 || nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]) == 0)
		return -EBADMSG;
	*ret_cmd = ((struct genlmsghdr *)nlmsg_data(h))->cmd;
	*ret_family = nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]);
	*ret_group = id;
	return 0;
}

struct collect {
	struct kmod *k;
	const char *resource;
	struct device_list *list;	/* enumerate, refresh: records */
	struct backend_update *updates; /* dispatch */
	size_t n_updates;
	bool rescan;
	int error;
};

static int on_reply(struct nl_msg *msg, void *userdata)
{
	struct collect *c = userdata;
	struct xpu_device *d = NULL;
	int cmd = 0, r;

	/* after a failure, the rest of the answer is read all the same, and dropped */
	if (c->error < 0)
		return NL_SKIP;
	r = kmod_parse_message(nlmsg_hdr(msg), c->resource, &cmd, &d);
	if (r == -ENOMEM) {
		c->error = r;
		return NL_SKIP;
	}
	if (r < 0) {
		log_debug_errno(r, "xpu_pci: ignoring a message it sent: %m");
		return NL_SKIP;
	}
	r = device_list_push(c->list, d);
	if (r < 0)
		c->error = r;
	return NL_OK;
}

/* Where the answer to one request stands. */
struct answer {
	uint32_t seq;
	bool done;
	int error; /* what the kernel answered, as -errno */
};

static int on_answer_seq(struct nl_msg *msg, void *userdata)
{
	struct answer *a = userdata;

	/* left over from an earlier request that timed out or failed half-way: drop it */
	return nlmsg_hdr(msg)->nlmsg_seq == a->seq ? NL_OK : NL_SKIP;
}

static int on_answer_end(struct nl_msg *msg, void *userdata)
{
	struct answer *a = userdata;

	a->done = true;
	return NL_STOP;
}

static int on_answer_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *userdata)
{
	struct answer *a = userdata;

	a->error = e->error < 0 ? e->error : -EIO;
	a->done = true;
	return NL_STOP;
}

int kmod_read_answer(struct nl_sock *sk, uint32_t seq, int (*on_msg)(struct nl_msg *, void *),
		     void *userdata)
{
	struct answer a = { .seq = seq };
	struct nl_cb *cb;
	int r = 0;

	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_msg, userdata);
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, on_answer_seq, &a);
	/* a GET ends with its acknowledgement (NLM_F_ACK), a dump with NLMSG_DONE */
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_answer_end, &a);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_answer_end, &a);
	nl_cb_err(cb, NL_CB_CUSTOM, on_answer_error, &a);
	while (!a.done) {
		/* one datagram at least, or the socket's receive timeout */
		r = nl_recvmsgs_report(sk, cb);
		if (a.error < 0 || r <= 0)
			break;
	}
	nl_cb_put(cb);
	if (a.error < 0)
		return a.error;
	if (r == 0)
		return -EAGAIN;
	return r < 0 ? kmod_errno(r) : 0;
}

/* Sends @msg (freed) on the request socket and reads its answer with @on_msg. */
static int kmod_send(struct kmod *k, struct nl_msg *msg, int (*on_msg)(struct nl_msg *, void *),
		     void *userdata)
{
	uint32_t seq;
	int r;

	/* completes the header: our port, the next sequence number, NLM_F_ACK */
	r = nl_send_auto(k->req, msg);
	seq = nlmsg_hdr(msg)->nlmsg_seq;
	nlmsg_free(msg);
	if (r < 0)
		return kmod_errno(r);
	return kmod_read_answer(k->req, seq, on_msg, userdata);
}

/* Makes @events a member of the module's "events" group @group, and @family the family. */
static int kmod_attach(struct kmod *k, int family, int group)
{
	int r;

	if (k->group > 0 && k->group != group)
		(void)nl_socket_drop_membership(k->events, k->group);
	k->group = 0;
	/*
	 * Joined again even when the id is the same: unregistering the family took every socket
	 * out of its groups, and the new family may have been given the old group's id.
	 */
	if (group > 0) {
		r = nl_socket_add_membership(k->events, group);
		if (r < 0)
			return kmod_errno(r);
		k->group = group;
	}
	k->family = family;
	return 0;
}

struct family_answer {
	const char *name, *group;
	int family, group_id;
};

static int on_family(struct nl_msg *msg, void *userdata)
{
	struct family_answer *a = userdata;
	int cmd, family, group;

	if (kmod_parse_family(nlmsg_hdr(msg), a->name, a->group, &cmd, &family, &group) >= 0 &&
	    cmd == CTRL_CMD_NEWFAMILY) {
		a->family = family;
		a->group_id = group;
	}
	return NL_OK;
}

/*
 * Asks the generic netlink controller for family @name and the id of its multicast group
 * @group. Returns 0; -ENOENT when there is no such family (the kernel's answer) or it lacks
 * the group; -errno.
 */
static int kmod_resolve(struct kmod *k, const char *name, const char *group, int *ret_family,
			int *ret_group)
{
	struct family_answer a = { .name = name, .group = group };
	struct nl_msg *msg;
	int r;

	msg = nlmsg_alloc();
	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, GENL_ID_CTRL, 0, 0, CTRL_CMD_GETFAMILY,
			 1) ||
	    nla_put_string(msg, CTRL_ATTR_FAMILY_NAME, name) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	r = kmod_send(k, msg, on_family, &a);
	if (r < 0)
		return r;
	if (a.family <= 0 || a.group_id <= 0)
		return -ENOENT;
	*ret_family = a.family;
	*ret_group = a.group_id;
	return 0;
}

/* Finds the module's family again, after it was unloaded: -ENOENT while it is not loaded. */
static int kmod_reattach(struct kmod *k)
{
	int family, group, r;

	r = kmod_resolve(k, XPU_GENL_NAME, XPU_GENL_MCGRP_EVENTS, &family, &group);
	if (r < 0)
		return r;
	log_debug("xpu_pci: generic netlink family \"%s\" is %d now, events group %d.",
		  XPU_GENL_NAME, family, group);
	return kmod_attach(k, family, group);
}

static int kmod_request_once(struct kmod *k, int flags, const char *addr, struct collect *c)
{
	struct nl_msg *msg;
	int r;

	msg = nlmsg_alloc();
	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, k->family, 0, flags, XPU_CMD_GET_DEVICE,
			 XPU_GENL_VERSION) ||
	    (addr && nla_put_string(msg, XPU_A_PCI_ADDR, addr) < 0)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	r = kmod_send(k, msg, on_reply, c);
	if (r < 0)
		return r;
	return c->error;
}

/*
 * One request to the module. -ENOENT: the module is not loaded. The family is looked up again
 * when it is unknown (its removal was announced) and when the kernel no longer knows the id
 * (-ENOENT: the module was reloaded, and the controller's notification is still queued or was
 * lost); *ret_reattached then says the family changed under the caller's records.
 */
static int kmod_request(struct kmod *k, int flags, const char *addr, struct collect *c,
			bool *ret_reattached)
{
	int old = k->family, r;

	*ret_reattached = false;
	if (k->family > 0) {
		r = kmod_request_once(k, flags, addr, c);
		if (r != -ENOENT)
			return r;
		k->family = 0;
	}
	r = kmod_reattach(k);
	if (r < 0)
		return r;
	if (k->family == old)
		return -ENOENT; /* the same id and still no such family: give up for now */
	*ret_reattached = true;
	return kmod_request_once(k, flags, addr, c);
}

static void kmod_free(struct kmod *k)
{
	if (!k)
		return;
	nl_socket_free(k->req);
	nl_socket_free(k->events);
	free(k);
}

/* Sets *ret_reason to "@what: <strerror(-r)>" and returns @r. */
static int reason_errno(char **ret_reason, int r, const char *what)
{
	if (asprintf(ret_reason, "%s: %s", what, strerror(-r)) < 0)
		*ret_reason = NULL;
	return r;
}

/* Available either way; while the module is not loaded, the reason says so. */
static void kmod_set_reason(struct xpu_backend *b)
{
	const struct kmod *k = b->userdata;

	if (k->family > 0)
		b->reason = mfree(b->reason);
	else if (!b->reason)
		b->reason = strdup("the xpu_pci kernel module is not loaded (no generic netlink "
				   "family \"" XPU_GENL_NAME "\"); its devices are listed once it is");
}

static int kmod_probe(struct xpu_backend *b, char **ret_reason)
{
	struct timeval tv = { .tv_sec = 2 };
	int family, ctrl_group, r;
	struct kmod *k;

	/* netlink describes the running kernel, not a simulated root */
	if (!b->host->is_real) {
		*ret_reason = strdup("the host root is simulated; xpu_pci describes the real host");
		return -EOPNOTSUPP;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->req = nl_socket_alloc();
	k->events = nl_socket_alloc();
	if (!k->req || !k->events) {
		kmod_free(k);
		return -ENOMEM;
	}
	r = genl_connect(k->req);
	if (r < 0)
		goto fail;
	(void)setsockopt(nl_socket_get_fd(k->req), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	nl_socket_disable_seq_check(k->events);
	r = genl_connect(k->events);
	if (r >= 0)
		r = nl_socket_set_nonblocking(k->events);
	if (r < 0)
		goto fail;
	/*
	 * The controller's notifications first, so that an unload and reload of the module from
	 * here on is seen: its family then has a new id, and its groups have lost their members.
	 */
	r = kmod_resolve(k, "nlctrl", "notify", &family, &ctrl_group);
	if (r < 0) {
		kmod_free(k);
		return reason_errno(ret_reason, r, "cannot find the generic netlink controller");
	}
	r = nl_socket_add_membership(k->events, ctrl_group);
	if (r < 0)
		goto fail;
	r = kmod_reattach(k);
	/*
	 * Not loaded (yet: the package's postinst, a later modprobe): the controller's notification
	 * of its family brings its devices in when it is, as after an unload and reload.
	 */
	if (r < 0 && r != -ENOENT) {
		kmod_free(k);
		return reason_errno(ret_reason, r, "cannot talk to the xpu_pci module");
	}
	k->config = b->config;
	b->userdata = k;
	kmod_set_reason(b);
	if (b->reason)
		log_info("xpu_pci: %s.", b->reason);
	return 0;

fail:
	kmod_free(k);
	return reason_errno(ret_reason, kmod_errno(r) ?: -EIO, "cannot talk to the xpu_pci module");
}

/*
 * The CPUs near @d's function, from sysfs as the generic PCI backend reads them: xpu_pci says the
 * NUMA node but not its CPUs, which "cpuset" (--numa-local) confines to. A missing or bad list
 * leaves none.
 */
static int kmod_read_cpu_list(const struct xpu_host *host, struct xpu_device *d)
{
	char path[64];
	int r;

	if (!host || host->sys_fd < 0 || d->cpu_list)
		return 0;
	snprintf(path, sizeof(path), "bus/pci/devices/%s/local_cpulist", d->pci.address);
	r = pci_read_cpu_list(host->sys_fd, path, &d->cpu_list);
	if (r == -ENOMEM)
		return r;
	if (r == -EINVAL)
		log_warning("xpu_pci: %s: ignoring its local_cpulist, not a CPU list", d->id);
	return 0;
}

static int kmod_enumerate(struct xpu_backend *b, struct device_list *list)
{
	struct kmod *k = b->userdata;
	struct collect c = { .k = k, .resource = kmod_config_get(k->config)->resource, .list = list };
	size_t first = list->n;
	bool reattached;
	int r;

	r = kmod_request(k, NLM_F_DUMP, NULL, &c, &reattached);
	kmod_set_reason(b);
	/* the module is unloaded: its devices are gone with it, until it is loaded again */
	if (r == -ENOENT)
		return 0;
	for (size_t i = first; r >= 0 && i < list->n; i++)
		r = kmod_read_cpu_list(b->host, list->items[i]);
	return r;
}

static int kmod_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	struct kmod *k = b->userdata;
	struct device_list l = {};
	struct collect c = { .k = k, .resource = kmod_config_get(k->config)->resource, .list = &l };
	bool reattached;
	int r;

	if (!d->has_pci)
		return -ENODEV;
	r = kmod_request(k, 0, d->pci.address, &c, &reattached);
	if (r == -ENODEV || r == -ENOENT || (r >= 0 && l.n == 0)) {
		device_list_clear(&l);
		return -ENODEV;
	}
	if (r >= 0 && reattached) {
		/* a reloaded module: its index and node of the device may be new */
		device_list_clear(&l);
		return -ESTALE;
	}
	if (r >= 0) {
		struct xpu_device *now = l.items[0];

		free(d->health.reason);
		d->health = now->health;
		now->health = (struct xpu_health){};
	}
	device_list_clear(&l);
	return r;
}

static int kmod_watch(struct xpu_backend *b)
{
	struct kmod *k = b->userdata;

	return nl_socket_get_fd(k->events);
}

/* The controller's news of the module's family: unloaded, or loaded again. */
static int on_family_news(struct collect *c, struct nlmsghdr *h)
{
	struct kmod *k = c->k;
	int cmd, family, group, r;

	r = kmod_parse_family(h, XPU_GENL_NAME, XPU_GENL_MCGRP_EVENTS, &cmd, &family, &group);
	if (r == -ENOENT)
		return NL_SKIP; /* another family's */
	if (r < 0) {
		log_debug_errno(r, "xpu_pci: ignoring a malformed controller notification: %m");
		return NL_SKIP;
	}
	if (cmd == CTRL_CMD_DELFAMILY) {
		/* old news: a request found the reloaded module's family before this was read */
		if (family != k->family)
			return NL_OK;
		log_debug("xpu_pci: the module's generic netlink family is gone, rescanning.");
		/* the kernel has taken every member out of the family's groups already */
		if (k->group > 0)
			(void)nl_socket_drop_membership(k->events, k->group);
		k->family = 0;
		k->group = 0;
		c->rescan = true;
		return NL_OK;
	}
	if (cmd != CTRL_CMD_NEWFAMILY && cmd != CTRL_CMD_NEWMCAST_GRP)
		return NL_SKIP;
	if (family == k->family && group == k->group)
		return NL_OK; /* known already: looked up by a request in between */
	if (group <= 0) {
		/* without its events group: leave it to the next request to look it up */
		k->family = 0;
	} else {
		r = kmod_attach(k, family, group);
		if (r < 0) {
			log_debug_errno(r, "xpu_pci: cannot join the events group %d: %m", group);
			k->family = 0;
		} else {
			log_debug("xpu_pci: the module is back as generic netlink family %d, "
				  "rescanning.", family);
		}
	}
	c->rescan = true;
	return NL_OK;
}

static int on_event(struct nl_msg *msg, void *userdata)
{
	struct collect *c = userdata;
	struct xpu_device *d = NULL;
	struct backend_update *u;
	int cmd = 0, r;

	if (nlmsg_hdr(msg)->nlmsg_type == GENL_ID_CTRL)
		return on_family_news(c, nlmsg_hdr(msg));
	/* a message of the family's earlier id, queued before it was unloaded */
	if (c->k->family <= 0 || nlmsg_hdr(msg)->nlmsg_type != c->k->family)
		return NL_SKIP;
	r = kmod_parse_message(nlmsg_hdr(msg), c->resource, &cmd, &d);
	if (r == -ENODEV && cmd == XPU_CMD_DEVICE_REMOVED) {
		log_debug("xpu_pci: a device was removed, rescanning.");
		c->rescan = true;
		return NL_OK;
	}
	if (r < 0) {
		if (r == -ENOMEM)
			c->error = r;
		else
			log_debug_errno(r, "xpu_pci: ignoring a malformed event: %m");
		return r == -ENOMEM ? NL_STOP : NL_SKIP;
	}
	if (cmd == XPU_CMD_DEVICE_ADDED) {
		log_debug("xpu_pci: device %s added, rescanning.", d->id);
		c->rescan = true;
	} else if (cmd == XPU_CMD_HEALTH_CHANGED) {
		log_debug("xpu_pci: device %s is now %s%s%s.", d->id,
			  xpu_health_state_to_string(d->health.state),
			  d->health.reason ? ": " : "", d->health.reason ?: "");
		u = realloc(c->updates, (c->n_updates + 1) * sizeof(*u));
		if (!u) {
			device_free(d);
			c->error = -ENOMEM;
			return NL_STOP;
		}
		c->updates = u;
		u[c->n_updates].id = TAKE_PTR(d->id);
		u[c->n_updates].health = d->health;
		d->health = (struct xpu_health){};
		c->n_updates++;
	}
	device_free(d);
	return NL_OK;
}

static int kmod_dispatch(struct xpu_backend *b, struct backend_update **ret_updates,
			 size_t *ret_n, bool *ret_rescan)
{
	struct kmod *k = b->userdata;
	struct collect c = { .k = k, .resource = kmod_config_get(k->config)->resource };
	int r;

	r = nl_socket_modify_cb(k->events, NL_CB_VALID, NL_CB_CUSTOM, on_event, &c);
	if (r < 0)
		return kmod_errno(r);
	/* bounded: the socket is non-blocking, so this drains what is queued and stops */
	for (int i = 0; i < 256; i++) {
		r = nl_recvmsgs_default(k->events);
		if (r < 0 || c.error < 0)
			break;
	}
	if (c.error < 0) {
		backend_updates_free(c.updates, c.n_updates);
		return c.error;
	}
	if (r < 0 && r != -NLE_AGAIN) {
		/* an overflowed socket (events lost) or a broken one: re-read everything */
		log_debug("xpu_pci: event socket: %s, rescanning.", nl_geterror(r));
		c.rescan = true;
	}
	*ret_updates = c.updates;
	*ret_n = c.n_updates;
	*ret_rescan = c.rescan;
	return 0;
}

/* What the reset thread owns: the open device node. */
struct kmod_reset_call {
	int fd;
};

static int kmod_reset_run(void *data)
{
	struct kmod_reset_call *c = data;

	return RET_NERRNO(ioctl(c->fd, XPU_PCI_IOC_RESET));
}

static void kmod_reset_call_free(void *data)
{
	struct kmod_reset_call *c = data;

	safe_close(c->fd);
	free(c);
}

/*
 * The module's own reset (XPU_PCI_IOC_RESET on /dev/xpu/N): it takes the device's locks, so a
 * reset never races a unit of work or a removal, and the module restores the function's state.
 */
static int kmod_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason)
{
	const char *node = d->device_nodes ? d->device_nodes[0] : NULL;
	struct kmod_reset_call *c;
	int fd, r;

	if (!node || strncmp(node, "/dev/", 5) != 0 || b->host->dev_fd < 0) {
		if (asprintf(ret_reason, "xpu_pci gave %s no device node to reset it through",
			     d->id) < 0)
			return -ENOMEM;
		return -EOPNOTSUPP;
	}
	fd = openat(b->host->dev_fd, node + strlen("/dev/"), O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		if (asprintf(ret_reason, "cannot open %s: %s", node, strerror(-r)) < 0)
			return -ENOMEM;
		return r == -ENOENT ? -ENODEV : r;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	log_debug("Resetting %s through %s.", d->id, node);
	r = bounded_call(kmod_reset_run, c, kmod_reset_call_free, KMOD_RESET_TIMEOUT_USEC);
	if (r == -ENOTTY) {
		/* the PCI core has no reset method for the function */
		if (asprintf(ret_reason, "xpu_pci has no way to reset %s", d->id) < 0)
			return -ENOMEM;
		return -EOPNOTSUPP;
	}
	if (r < 0 && asprintf(ret_reason, r == -ETIMEDOUT ? "xpu_pci did not finish resetting %s "
							      "in time (%s)"
							    : "xpu_pci could not reset %s: %s",
			      d->id, strerror(-r)) < 0)
		return -ENOMEM;
	return r;
}

int kmod_backend_setup(struct xpu_backend *b, struct nl_sock *req, struct nl_sock *events,
		       int family, int group)
{
	struct kmod *k = calloc(1, sizeof(*k));

	if (!k) {
		nl_socket_free(req);
		nl_socket_free(events);
		return -ENOMEM;
	}
	k->req = req;
	k->events = events;
	k->family = family;
	k->group = group;
	k->config = b->config;
	b->userdata = k;
	return 0;
}

static void kmod_close(struct xpu_backend *b)
{
	kmod_free(b->userdata);
	b->userdata = NULL;
}

const struct xpu_backend_ops kmod_backend_ops = {
	.name = "kmod",
	.priority = KMOD_PRIORITY,
	.probe = kmod_probe,
	.enumerate = kmod_enumerate,
	.refresh = kmod_refresh,
	.watch = kmod_watch,
	.dispatch = kmod_dispatch,
	.reset = kmod_reset,
	.close = kmod_close,
};
