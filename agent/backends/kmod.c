// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Devices driven by our kernel module xpu_pci, from its generic netlink family "xpu"
 * (include/xpu/uapi/xpu_pci.h): a dump at each enumeration, a GET per health refresh, and the
 * "events" multicast group in the daemon's loop (added and removed ask for a rescan, health
 * changes become health updates). The module not being loaded makes the backend unavailable.
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

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "backends/backend.h"
#include "backends/kmod.h"
#include "shared/bounded.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "xpu/uapi/xpu_pci.h"

#define KMOD_PRIORITY 20
#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define KMOD_RESET_TIMEOUT_USEC (10 * 1000000ULL)

struct kmod {
	struct nl_sock *req;	/* GET and DUMP, blocking with a receive timeout */
	struct nl_sock *events; /* the multicast group, non-blocking */
	int family;
	const char *resource;	/* borrowed from the config; NULL: the default */
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
	if (name && (strncmp(name, "xpu/", 4) || strchr(name + 4, '/') || strstr(name, "..")))
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

struct collect {
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

static int kmod_request(struct kmod *k, int flags, const char *addr, struct collect *c)
{
	struct nl_msg *msg;
	uint32_t seq;
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
	/* completes the header: our port, the next sequence number, NLM_F_ACK */
	r = nl_send_auto(k->req, msg);
	seq = nlmsg_hdr(msg)->nlmsg_seq;
	nlmsg_free(msg);
	if (r < 0)
		return kmod_errno(r);
	r = kmod_read_answer(k->req, seq, on_reply, c);
	if (r < 0)
		return r;
	return c->error;
}

static void kmod_free(struct kmod *k)
{
	if (!k)
		return;
	nl_socket_free(k->req);
	nl_socket_free(k->events);
	free(k);
}

static int kmod_probe(struct xpu_backend *b, char **ret_reason)
{
	struct timeval tv = { .tv_sec = 2 };
	struct kmod *k;
	int grp, r;

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
	k->family = genl_ctrl_resolve(k->req, XPU_GENL_NAME);
	if (k->family < 0) {
		kmod_free(k);
		*ret_reason = strdup("the xpu_pci kernel module is not loaded (no generic netlink "
				     "family \"" XPU_GENL_NAME "\")");
		return -ENOENT;
	}
	grp = genl_ctrl_resolve_grp(k->req, XPU_GENL_NAME, XPU_GENL_MCGRP_EVENTS);
	if (grp < 0) {
		r = grp;
		goto fail;
	}
	nl_socket_disable_seq_check(k->events);
	r = genl_connect(k->events);
	if (r >= 0)
		r = nl_socket_set_nonblocking(k->events);
	if (r >= 0)
		r = nl_socket_add_membership(k->events, grp);
	if (r < 0)
		goto fail;
	k->resource = b->config ? b->config->kmod_resource : NULL;
	b->userdata = k;
	return 0;

fail:
	kmod_free(k);
	if (asprintf(ret_reason, "cannot talk to the xpu_pci module: %s", nl_geterror(r)) < 0)
		*ret_reason = NULL;
	return kmod_errno(r) ?: -EIO;
}

static int kmod_enumerate(struct xpu_backend *b, struct device_list *list)
{
	struct kmod *k = b->userdata;
	struct collect c = { .resource = k->resource, .list = list };

	return kmod_request(k, NLM_F_DUMP, NULL, &c);
}

static int kmod_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	struct kmod *k = b->userdata;
	struct device_list l = {};
	struct collect c = { .resource = k->resource, .list = &l };
	int r;

	if (!d->has_pci)
		return -ENODEV;
	r = kmod_request(k, 0, d->pci.address, &c);
	if (r == -ENODEV || (r >= 0 && l.n == 0)) {
		device_list_clear(&l);
		return -ENODEV;
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

static int on_event(struct nl_msg *msg, void *userdata)
{
	struct collect *c = userdata;
	struct xpu_device *d = NULL;
	struct backend_update *u;
	int cmd = 0, r;

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
	struct collect c = { .resource = k->resource };
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
