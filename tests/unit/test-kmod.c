// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The kmod backend's mapping of xpu_pci's generic netlink messages to device records, without
 * a kernel: the messages are built with libnl as the module builds them (kmod/genl.c), then
 * also malformed; its reading of answers from a socket that a second socket fills the way the
 * kernel would; its following the module through an unload and a reload (the generic netlink
 * controller's notifications, and a request that finds the family's id gone); the CPUs of a
 * device's NUMA node from sysfs, which the module does not send; and the backend's probe on a
 * host without the module. The module itself is tested in a virtual
 * machine (tests/vm/run.sh).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <linux/genetlink.h>

#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/socket.h>

#include "backends/backend.h"
#include "backends/kmod.h"
#include "shared/host.h"
#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"
#include "xpu/uapi/xpu_pci.h"

#define FAKE_FAMILY 0x42

/* A message as the module sends it; @health, @reason, @addr, @devname as given (NULL: absent). */
static struct nl_msg *msg_new(uint8_t cmd, const char *addr, int health, const char *reason,
			      const char *devname)
{
	struct nl_msg *m = nlmsg_alloc();

	assert_non_null(m);
	assert_non_null(genlmsg_put(m, 0, 0, FAKE_FAMILY, 0, 0, cmd, XPU_GENL_VERSION));
	assert_int_equal(nla_put_u32(m, XPU_A_INDEX, 3), 0);
	if (addr)
		assert_int_equal(nla_put_string(m, XPU_A_PCI_ADDR, addr), 0);
	assert_int_equal(nla_put_u16(m, XPU_A_VENDOR, 0x1234), 0);
	assert_int_equal(nla_put_u16(m, XPU_A_DEVICE, 0x11e8), 0);
	if (health >= 0)
		assert_int_equal(nla_put_u8(m, XPU_A_HEALTH, health), 0);
	if (reason)
		assert_int_equal(nla_put_string(m, XPU_A_HEALTH_REASON, reason), 0);
	assert_int_equal(nla_put_u32(m, XPU_A_ID_REG, 0x010000ed), 0);
	assert_int_equal(nla_put_s32(m, XPU_A_NUMA_NODE, 1), 0);
	if (devname)
		assert_int_equal(nla_put_string(m, XPU_A_DEVNAME, devname), 0);
	assert_int_equal(nla_put_u64(m, XPU_A_AER_FATAL, 2), 0);
	return m;
}

static int parse(struct nl_msg *m, const char *resource, int *cmd, struct xpu_device **d)
{
	int r = kmod_parse_message(nlmsg_hdr(m), resource, cmd, d);

	nlmsg_free(m);
	return r;
}

static void test_healthy_edu(void **state)
{
	struct xpu_device *d = NULL;
	int cmd = 0;

	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, "0000:01:00.0", XPU_PCI_HEALTH_OK,
				       NULL, "xpu/3"),
			       NULL, &cmd, &d),
			 0);
	assert_int_equal(cmd, XPU_CMD_GET_DEVICE);
	assert_string_equal(d->id, "0000:01:00.0");
	assert_true(d->has_pci);
	assert_string_equal(d->pci.address, "0000:01:00.0");
	assert_int_equal(d->pci.vendor_id, 0x1234);
	assert_int_equal(d->pci.device_id, 0x11e8);
	assert_int_equal(d->kind, XPU_KIND_ACCEL);
	assert_string_equal(d->driver, "xpu_pci");
	assert_string_equal(d->resource, "xpu.dev/edu");
	assert_int_equal(d->numa_node, 1);
	assert_string_equal(d->device_nodes[0], "/dev/xpu/3");
	assert_null(d->device_nodes[1]);
	assert_int_equal(d->health.state, XPU_HEALTH_HEALTHY);
	assert_string_equal(device_get_property(d, "id_register"), "0x010000ed");
	assert_string_equal(device_get_property(d, "xpu_pci_index"), "3");
	assert_string_equal(device_get_property(d, "aer_fatal"), "2");
	device_free(d);
}

static void test_unhealthy_and_resource(void **state)
{
	struct xpu_device *d = NULL;
	int cmd = 0;

	/* a short address is canonicalised; the configured resource wins */
	assert_int_equal(parse(msg_new(XPU_CMD_HEALTH_CHANGED, "01:00.0",
				       XPU_PCI_HEALTH_UNHEALTHY, "liveness probe failed", "xpu/0"),
			       "example.com/edu", &cmd, &d),
			 0);
	assert_int_equal(cmd, XPU_CMD_HEALTH_CHANGED);
	assert_string_equal(d->id, "0000:01:00.0");
	assert_string_equal(d->resource, "example.com/edu");
	assert_int_equal(d->health.state, XPU_HEALTH_UNHEALTHY);
	assert_string_equal(d->health.reason, "xpu_pci: liveness probe failed");
	device_free(d);
}

static void test_removed(void **state)
{
	struct xpu_device *d = NULL;
	int cmd = 0;

	assert_int_equal(parse(msg_new(XPU_CMD_DEVICE_REMOVED, "0000:01:00.0",
				       XPU_PCI_HEALTH_REMOVED, NULL, "xpu/0"),
			       NULL, &cmd, &d),
			 -ENODEV);
	assert_int_equal(cmd, XPU_CMD_DEVICE_REMOVED);
	assert_null(d);
}

static void test_malformed(void **state)
{
	struct xpu_device *d = NULL;
	struct nl_msg *m;
	char big[200];
	int cmd = 0;

	/* required attributes missing */
	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, NULL, XPU_PCI_HEALTH_OK, NULL, NULL),
			       NULL, &cmd, &d),
			 -EBADMSG);
	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, "0000:01:00.0", -1, NULL, NULL), NULL,
			       &cmd, &d),
			 -EBADMSG);
	/* not a PCI address; a health value from the future; a node outside /dev/xpu */
	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, "../../etc", XPU_PCI_HEALTH_OK, NULL,
				       NULL),
			       NULL, &cmd, &d),
			 -EBADMSG);
	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, "0000:01:00.0", 9, NULL, NULL), NULL,
			       &cmd, &d),
			 -EBADMSG);
	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, "0000:01:00.0", XPU_PCI_HEALTH_OK,
				       NULL, "xpu/../../etc/shadow"),
			       NULL, &cmd, &d),
			 -EBADMSG);
	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, "0000:01:00.0", XPU_PCI_HEALTH_OK,
				       NULL, "sda"),
			       NULL, &cmd, &d),
			 -EBADMSG);
	/* oversized string */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(parse(msg_new(XPU_CMD_GET_DEVICE, big, XPU_PCI_HEALTH_OK, NULL, NULL),
			       NULL, &cmd, &d),
			 -EBADMSG);
	/* an attribute of the wrong size */
	m = nlmsg_alloc();
	assert_non_null(genlmsg_put(m, 0, 0, FAKE_FAMILY, 0, 0, XPU_CMD_GET_DEVICE, 1));
	assert_int_equal(nla_put_u8(m, XPU_A_INDEX, 1), 0);
	assert_int_equal(nla_put_string(m, XPU_A_PCI_ADDR, "0000:01:00.0"), 0);
	assert_int_equal(nla_put_u8(m, XPU_A_HEALTH, XPU_PCI_HEALTH_OK), 0);
	assert_int_equal(parse(m, NULL, &cmd, &d), -EBADMSG);
	/* a message too short for the generic netlink header */
	m = nlmsg_alloc_simple(FAKE_FAMILY, 0);
	assert_int_equal(parse(m, NULL, &cmd, &d), -EBADMSG);
	assert_null(d);
}

/*
 * Answers as the kernel sends them, into the socket the backend reads: two NETLINK_USERSOCK
 * sockets, the only protocol where one user socket may send to another without privileges.
 */
struct pair {
	struct nl_sock *xpud, *kernel;
};

static int pair_setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->xpud = nl_socket_alloc();
	p->kernel = nl_socket_alloc();
	assert_non_null(p->xpud);
	assert_non_null(p->kernel);
	*state = p;
	if (nl_connect(p->xpud, NETLINK_USERSOCK) < 0 ||
	    nl_connect(p->kernel, NETLINK_USERSOCK) < 0)
		return 0; /* no netlink here: the tests skip */
	nl_socket_set_peer_port(p->kernel, nl_socket_get_local_port(p->xpud));
	return 0;
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;

	nl_socket_free(p->xpud);
	nl_socket_free(p->kernel);
	free(p);
	return 0;
}

static struct pair *pair_get(void **state)
{
	struct pair *p = *state;

	if (nl_socket_get_fd(p->xpud) < 0 || nl_socket_get_fd(p->kernel) < 0)
		skip();
	return p;
}

/* Sends @m (freed) as one datagram, numbered @seq. */
static void send_msg(struct pair *p, struct nl_msg *m, uint32_t seq, uint16_t flags)
{
	nlmsg_hdr(m)->nlmsg_seq = seq;
	nlmsg_hdr(m)->nlmsg_flags |= flags;
	assert_true(nl_send(p->kernel, m) > 0);
	nlmsg_free(m);
}

static void send_reply(struct pair *p, uint32_t seq, uint16_t flags, const char *addr, int health)
{
	send_msg(p, msg_new(XPU_CMD_GET_DEVICE, addr, health, NULL, "xpu/0"), seq, flags);
}

/* The acknowledgement of request @seq (@error 0) or its error. */
static void send_ack(struct pair *p, uint32_t seq, int error)
{
	struct nlmsgerr e = { .error = error,
			      .msg = { .nlmsg_len = NLMSG_HDRLEN, .nlmsg_seq = seq } };
	struct nl_msg *m = nlmsg_alloc_simple(NLMSG_ERROR, 0);

	assert_non_null(m);
	assert_int_equal(nlmsg_append(m, &e, sizeof(e), NLMSG_ALIGNTO), 0);
	send_msg(p, m, seq, 0);
}

static void send_done(struct pair *p, uint32_t seq)
{
	struct nl_msg *m = nlmsg_alloc_simple(NLMSG_DONE, NLM_F_MULTI);
	int zero = 0;

	assert_non_null(m);
	assert_int_equal(nlmsg_append(m, &zero, sizeof(zero), NLMSG_ALIGNTO), 0);
	send_msg(p, m, seq, 0);
}

/* What one answer brought: the devices, as "address health" lines. */
struct got {
	char text[256];
	int n;
};

static int on_got(struct nl_msg *msg, void *userdata)
{
	struct got *g = userdata;
	struct xpu_device *d = NULL;
	size_t len = strlen(g->text);
	int cmd;

	assert_int_equal(kmod_parse_message(nlmsg_hdr(msg), NULL, &cmd, &d), 0);
	snprintf(g->text + len, sizeof(g->text) - len, "%s %s\n", d->id,
		 xpu_health_state_to_string(d->health.state));
	g->n++;
	device_free(d);
	return NL_OK;
}

static bool queue_empty(struct pair *p)
{
	char buf[64];

	return recv(nl_socket_get_fd(p->xpud), buf, sizeof(buf), MSG_DONTWAIT | MSG_PEEK) < 0 &&
	       errno == EAGAIN;
}

/*
 * A GET is answered by its reply and then its acknowledgement. Both are consumed, so the next
 * GET reads its own reply, not the acknowledgement of the one before (the health probes used to
 * alternate between "no such device" and a reply one probe old); what an earlier request that
 * was given up left behind is dropped.
 */
static void test_answer_get_in_turn(void **state)
{
	struct pair *p = pair_get(state);
	struct got g = {};

	send_reply(p, 5, 0, "0000:01:00.0", XPU_PCI_HEALTH_UNHEALTHY); /* given up on */
	send_ack(p, 5, 0);
	send_reply(p, 6, 0, "0000:01:00.0", XPU_PCI_HEALTH_OK);
	send_ack(p, 6, 0);
	send_reply(p, 7, 0, "0000:02:00.0", XPU_PCI_HEALTH_UNHEALTHY);
	send_ack(p, 7, 0);

	assert_int_equal(kmod_read_answer(p->xpud, 6, on_got, &g), 0);
	assert_string_equal(g.text, "0000:01:00.0 healthy\n");
	g = (struct got){};
	assert_int_equal(kmod_read_answer(p->xpud, 7, on_got, &g), 0);
	assert_string_equal(g.text, "0000:02:00.0 unhealthy\n");
	assert_true(queue_empty(p));
}

/* A dump: several datagrams, read up to and including NLMSG_DONE. */
static void test_answer_dump(void **state)
{
	struct pair *p = pair_get(state);
	struct got g = {};

	send_ack(p, 7, 0); /* of an earlier GET */
	send_reply(p, 8, NLM_F_MULTI, "0000:01:00.0", XPU_PCI_HEALTH_OK);
	send_reply(p, 8, NLM_F_MULTI, "0000:02:00.0", XPU_PCI_HEALTH_UNHEALTHY);
	send_done(p, 8);

	assert_int_equal(kmod_read_answer(p->xpud, 8, on_got, &g), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.text, "0000:01:00.0 healthy\n0000:02:00.0 unhealthy\n");
	assert_true(queue_empty(p));
}

/* The kernel's error is the answer, as its errno; an earlier request's error is not. */
static void test_answer_error(void **state)
{
	struct pair *p = pair_get(state);
	struct got g = {};

	send_ack(p, 8, -EBUSY);
	send_ack(p, 9, -ENODEV);
	assert_int_equal(kmod_read_answer(p->xpud, 9, on_got, &g), -ENODEV);
	assert_int_equal(g.n, 0);
	assert_true(queue_empty(p));
}

/* No answer of its own within the receive timeout: -EAGAIN, not someone else's answer. */
static void test_answer_timeout(void **state)
{
	struct pair *p = pair_get(state);
	struct timeval tv = { .tv_usec = 10000 };
	struct got g = {};

	assert_int_equal(setsockopt(nl_socket_get_fd(p->xpud), SOL_SOCKET, SO_RCVTIMEO, &tv,
				    sizeof(tv)),
			 0);
	send_reply(p, 9, 0, "0000:01:00.0", XPU_PCI_HEALTH_OK);
	send_ack(p, 9, 0);
	assert_int_equal(kmod_read_answer(p->xpud, 10, on_got, &g), -EAGAIN);
	assert_int_equal(g.n, 0);
}

/* A message of the generic netlink controller about family @name, as ctrl_fill_info() builds
 * it; with the multicast group "events" as @group when that is not 0. */
static struct nl_msg *ctrl_msg_new(uint8_t cmd, const char *name, uint16_t family, uint32_t group)
{
	struct nl_msg *m = nlmsg_alloc();
	struct nlattr *grps, *grp;

	assert_non_null(m);
	assert_non_null(genlmsg_put(m, 0, 0, GENL_ID_CTRL, 0, 0, cmd, 2));
	assert_int_equal(nla_put_string(m, CTRL_ATTR_FAMILY_NAME, name), 0);
	assert_int_equal(nla_put_u16(m, CTRL_ATTR_FAMILY_ID, family), 0);
	assert_int_equal(nla_put_u32(m, CTRL_ATTR_VERSION, 1), 0);
	assert_int_equal(nla_put_u32(m, CTRL_ATTR_MAXATTR, XPU_A_MAX), 0);
	if (group) {
		grps = nla_nest_start(m, CTRL_ATTR_MCAST_GROUPS);
		assert_non_null(grps);
		/* a group before ours, that must not be taken for it */
		grp = nla_nest_start(m, 1);
		assert_int_equal(nla_put_u32(m, CTRL_ATTR_MCAST_GRP_ID, group + 1), 0);
		assert_int_equal(nla_put_string(m, CTRL_ATTR_MCAST_GRP_NAME, "config"), 0);
		nla_nest_end(m, grp);
		grp = nla_nest_start(m, 2);
		assert_int_equal(nla_put_u32(m, CTRL_ATTR_MCAST_GRP_ID, group), 0);
		assert_int_equal(nla_put_string(m, CTRL_ATTR_MCAST_GRP_NAME, "events"), 0);
		nla_nest_end(m, grp);
		nla_nest_end(m, grps);
	}
	return m;
}

static int parse_family(struct nl_msg *m, int *cmd, int *family, int *group)
{
	int r = kmod_parse_family(nlmsg_hdr(m), XPU_GENL_NAME, XPU_GENL_MCGRP_EVENTS, cmd, family,
				  group);

	nlmsg_free(m);
	return r;
}

static void test_parse_family(void **state)
{
	int cmd = -1, family = -1, group = -1;
	struct nlattr *grps, *grp;
	struct nl_msg *m;

	assert_int_equal(parse_family(ctrl_msg_new(CTRL_CMD_NEWFAMILY, "xpu", 0x21, 7), &cmd,
				      &family, &group),
			 0);
	assert_int_equal(cmd, CTRL_CMD_NEWFAMILY);
	assert_int_equal(family, 0x21);
	assert_int_equal(group, 7);
	/* the removal names no groups */
	assert_int_equal(parse_family(ctrl_msg_new(CTRL_CMD_DELFAMILY, "xpu", 0x21, 0), &cmd,
				      &family, &group),
			 0);
	assert_int_equal(cmd, CTRL_CMD_DELFAMILY);
	assert_int_equal(family, 0x21);
	assert_int_equal(group, 0);
	/* another family's news, a message that is not the controller's */
	cmd = family = group = -1;
	assert_int_equal(parse_family(ctrl_msg_new(CTRL_CMD_NEWFAMILY, "xpux", 0x22, 3), &cmd,
				      &family, &group),
			 -ENOENT);
	assert_int_equal(parse_family(msg_new(XPU_CMD_HEALTH_CHANGED, "0000:01:00.0",
					      XPU_PCI_HEALTH_OK, NULL, NULL),
				      &cmd, &family, &group),
			 -ENOENT);
	assert_int_equal(cmd, -1);
	/* no family id; family id 0; a group without its id */
	m = nlmsg_alloc();
	assert_non_null(genlmsg_put(m, 0, 0, GENL_ID_CTRL, 0, 0, CTRL_CMD_NEWFAMILY, 2));
	assert_int_equal(nla_put_string(m, CTRL_ATTR_FAMILY_NAME, "xpu"), 0);
	assert_int_equal(parse_family(m, &cmd, &family, &group), -EBADMSG);
	assert_int_equal(parse_family(ctrl_msg_new(CTRL_CMD_NEWFAMILY, "xpu", 0, 7), &cmd, &family,
				      &group),
			 -EBADMSG);
	m = ctrl_msg_new(CTRL_CMD_NEWMCAST_GRP, "xpu", 0x21, 0);
	grps = nla_nest_start(m, CTRL_ATTR_MCAST_GROUPS);
	grp = nla_nest_start(m, 1);
	assert_int_equal(nla_put_string(m, CTRL_ATTR_MCAST_GRP_NAME, "events"), 0);
	nla_nest_end(m, grp);
	nla_nest_end(m, grps);
	assert_int_equal(parse_family(m, &cmd, &family, &group), -EBADMSG);
	assert_int_equal(cmd, -1);
}

/*
 * The backend over three NETLINK_USERSOCK sockets: its request socket and its event socket,
 * both talking to a third that plays the kernel.
 */
struct rig {
	struct xpu_backend b;
	struct pair p; /* xpud: the request socket */
	struct nl_sock *events;
};

static int rig_setup(void **state)
{
	struct timeval tv = { .tv_sec = 2 };
	struct rig *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	*state = g;
	g->b.ops = &kmod_backend_ops;
	g->p.xpud = nl_socket_alloc();
	g->events = nl_socket_alloc();
	g->p.kernel = nl_socket_alloc();
	assert_true(g->p.xpud && g->events && g->p.kernel);
	nl_socket_disable_seq_check(g->events);
	if (nl_connect(g->p.xpud, NETLINK_USERSOCK) < 0 ||
	    nl_connect(g->events, NETLINK_USERSOCK) < 0 ||
	    nl_connect(g->p.kernel, NETLINK_USERSOCK) < 0)
		return 0; /* no netlink here: the tests skip */
	assert_int_equal(nl_socket_set_nonblocking(g->events), 0);
	assert_int_equal(setsockopt(nl_socket_get_fd(g->p.xpud), SOL_SOCKET, SO_RCVTIMEO, &tv,
				    sizeof(tv)),
			 0);
	nl_socket_set_peer_port(g->p.xpud, nl_socket_get_local_port(g->p.kernel));
	nl_socket_set_peer_port(g->p.kernel, nl_socket_get_local_port(g->p.xpud));
	assert_int_equal(nl_socket_add_membership(g->events, 3), 0);
	assert_int_equal(kmod_backend_setup(&g->b, g->p.xpud, g->events, FAKE_FAMILY, 3), 0);
	return 0;
}

static int rig_teardown(void **state)
{
	struct rig *g = *state;

	if (g->b.userdata) {
		kmod_backend_ops.close(&g->b);
	} else {
		nl_socket_free(g->p.xpud);
		nl_socket_free(g->events);
	}
	nl_socket_free(g->p.kernel);
	free(g->b.reason); /* set while the family was gone */
	free(g);
	return 0;
}

static struct rig *rig_get(void **state)
{
	struct rig *g = *state;

	if (!g->b.userdata)
		skip();
	return g;
}

/* Sends @m (freed) from the kernel's socket to @to, numbered @seq. */
static void rig_send(struct rig *g, struct nl_sock *to, struct nl_msg *m, uint32_t seq,
		     uint16_t flags)
{
	nl_socket_set_peer_port(g->p.kernel, nl_socket_get_local_port(to));
	send_msg(&g->p, m, seq, flags);
	/* answers go to the request socket unless said otherwise */
	nl_socket_set_peer_port(g->p.kernel, nl_socket_get_local_port(g->p.xpud));
}

/* An event of the module's family @family to the backend's event socket. */
static void rig_event(struct rig *g, uint16_t family, int health)
{
	struct nl_msg *m = msg_new(XPU_CMD_HEALTH_CHANGED, "0000:01:00.0", health, "stuck", "xpu/0");

	nlmsg_hdr(m)->nlmsg_type = family;
	rig_send(g, g->events, m, 0, 0);
}

/* What one dispatch brought: the number of health updates; *rescan whether it asks for one. */
static size_t rig_dispatch(struct rig *g, bool *rescan)
{
	struct backend_update *u = NULL;
	size_t n = 0;

	*rescan = false;
	assert_int_equal(kmod_backend_ops.dispatch(&g->b, &u, &n, rescan), 0);
	backend_updates_free(u, n);
	return n;
}

static bool member_of(struct rig *g, int group)
{
	uint32_t groups[4] = {};
	socklen_t len = sizeof(groups);

	assert_int_equal(getsockopt(nl_socket_get_fd(g->events), SOL_NETLINK,
				    NETLINK_LIST_MEMBERSHIPS, groups, &len),
			 0);
	return groups[(group - 1) / 32] & (1U << ((group - 1) % 32));
}

/* The type and command of the next request the backend sent, or -1 for none. */
static int rig_request(struct rig *g, int *ret_cmd)
{
	char buf[4096];
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	ssize_t n;

	n = recv(nl_socket_get_fd(g->p.kernel), buf, sizeof(buf), MSG_DONTWAIT);
	if (n < (ssize_t)(NLMSG_HDRLEN + GENL_HDRLEN))
		return -1;
	*ret_cmd = ((struct genlmsghdr *)NLMSG_DATA(h))->cmd;
	return h->nlmsg_type;
}

/* The sequence number the backend's next request will carry. */
static uint32_t rig_next_seq(struct rig *g)
{
	return nl_socket_use_seq(g->p.xpud) + 1;
}

/* Queues the answer to dump @seq, one device, and has the backend enumerate. */
static void rig_enumerate_one(struct rig *g, uint32_t seq)
{
	struct device_list l = {};

	rig_send(g, g->p.xpud, msg_new(XPU_CMD_GET_DEVICE, "0000:01:00.0", XPU_PCI_HEALTH_OK, NULL,
				    "xpu/0"),
		 seq, NLM_F_MULTI);
	send_done(&g->p, seq);
	assert_int_equal(kmod_backend_ops.enumerate(&g->b, &l), 0);
	assert_int_equal(l.n, 1);
	device_list_clear(&l);
}

/*
 * Queues the answers to a request that finds the family's id gone, and to the lookup that
 * follows: family @family with events group @group. Returns the number of the request that
 * comes after them.
 */
static uint32_t rig_queue_lookup(struct rig *g, uint16_t family, uint32_t group)
{
	uint32_t seq = rig_next_seq(g);

	send_ack(&g->p, seq, -ENOENT);
	rig_send(g, g->p.xpud, ctrl_msg_new(CTRL_CMD_NEWFAMILY, "xpu", family, group), seq + 1, 0);
	send_ack(&g->p, seq + 1, 0);
	return seq + 2;
}

/*
 * rmmod and insmod while xpud runs: the controller announces that the family is gone and that
 * it is back with a new id; the backend drops what the old id still had queued, joins the new
 * events group, asks for rescans and sends its requests to the new id.
 */
static void test_dispatch_reload(void **state)
{
	struct rig *g = rig_get(state);
	bool rescan;
	int cmd;

	rig_event(g, FAKE_FAMILY, XPU_PCI_HEALTH_UNHEALTHY);
	assert_int_equal(rig_dispatch(g, &rescan), 1);
	assert_false(rescan);

	rig_send(g, g->events, ctrl_msg_new(CTRL_CMD_DELFAMILY, "xpu", FAKE_FAMILY, 0), 0, 0);
	rig_event(g, FAKE_FAMILY, XPU_PCI_HEALTH_OK); /* queued before the removal was read */
	assert_int_equal(rig_dispatch(g, &rescan), 0);
	assert_true(rescan);

	/* someone else's family comes and goes: no news for us */
	rig_send(g, g->events, ctrl_msg_new(CTRL_CMD_NEWFAMILY, "other", 0x50, 9), 0, 0);
	assert_int_equal(rig_dispatch(g, &rescan), 0);
	assert_false(rescan);
	assert_false(member_of(g, 9));

	rig_send(g, g->events, ctrl_msg_new(CTRL_CMD_NEWFAMILY, "xpu", FAKE_FAMILY + 1, 5), 0, 0);
	rig_send(g, g->events, ctrl_msg_new(CTRL_CMD_NEWMCAST_GRP, "xpu", FAKE_FAMILY + 1, 5), 0,
		 0);
	assert_int_equal(rig_dispatch(g, &rescan), 0);
	assert_true(rescan);
	assert_true(member_of(g, 5));
	assert_false(member_of(g, 3));

	rig_event(g, FAKE_FAMILY + 1, XPU_PCI_HEALTH_UNHEALTHY);
	rig_event(g, FAKE_FAMILY, XPU_PCI_HEALTH_UNHEALTHY); /* not the module's id any more */
	assert_int_equal(rig_dispatch(g, &rescan), 1);
	assert_false(rescan);

	/* the rescan asks the new id */
	rig_enumerate_one(g, rig_next_seq(g));
	assert_int_equal(rig_request(g, &cmd), FAKE_FAMILY + 1);
	assert_int_equal(cmd, XPU_CMD_GET_DEVICE);
	assert_int_equal(rig_request(g, &cmd), -1);
}

/*
 * The controller's notifications were lost (an overflowed socket): the request to the old id
 * fails with ENOENT, and the backend looks the family up again, joins its events group and
 * asks again. While the module is not loaded, it has no devices.
 */
static void test_request_reload(void **state)
{
	struct rig *g = rig_get(state);
	struct device_list l = {};
	struct xpu_device d = { .has_pci = true, .pci.address = "0000:01:00.0" };
	bool rescan;
	uint32_t seq;
	int cmd;

	rig_enumerate_one(g, rig_queue_lookup(g, FAKE_FAMILY + 2, 6));
	assert_int_equal(rig_request(g, &cmd), FAKE_FAMILY);
	assert_int_equal(rig_request(g, &cmd), GENL_ID_CTRL);
	assert_int_equal(cmd, CTRL_CMD_GETFAMILY);
	assert_int_equal(rig_request(g, &cmd), FAKE_FAMILY + 2);
	assert_true(member_of(g, 6));
	assert_false(member_of(g, 3));
	/* the controller's news of it, read late, change nothing: it stays in the new group */
	rig_send(g, g->events, ctrl_msg_new(CTRL_CMD_DELFAMILY, "xpu", FAKE_FAMILY, 0), 0, 0);
	rig_send(g, g->events, ctrl_msg_new(CTRL_CMD_NEWFAMILY, "xpu", FAKE_FAMILY + 2, 6), 0, 0);
	assert_int_equal(rig_dispatch(g, &rescan), 0);
	assert_false(rescan);
	assert_true(member_of(g, 6));

	/* a probe that had to look the family up: its record may be stale, rescan */
	seq = rig_queue_lookup(g, FAKE_FAMILY + 3, 6);
	rig_send(g, g->p.xpud, msg_new(XPU_CMD_GET_DEVICE, "0000:01:00.0", XPU_PCI_HEALTH_OK, NULL,
				    "xpu/0"),
		 seq, 0);
	send_ack(&g->p, seq, 0);
	assert_int_equal(kmod_backend_ops.refresh(&g->b, &d), -ESTALE);
	free(d.health.reason);

	/* unloaded: the old id is unknown and so is the name */
	seq = rig_next_seq(g);
	send_ack(&g->p, seq, -ENOENT);
	send_ack(&g->p, seq + 1, -ENOENT);
	assert_null(g->b.reason);
	assert_int_equal(kmod_backend_ops.enumerate(&g->b, &l), 0);
	assert_int_equal(l.n, 0);
	/* the backend says why it lists nothing */
	assert_non_null(strstr(g->b.reason ?: "", "module is not loaded"));
	/* and a probe of one of its devices finds it gone; the next request asks for the name */
	seq = rig_next_seq(g);
	send_ack(&g->p, seq, -ENOENT);
	assert_int_equal(kmod_backend_ops.refresh(&g->b, &d), -ENODEV);
}

/*
 * xpu_pci sends the NUMA node, not its CPUs: an enumeration reads each function's local_cpulist
 * from sysfs (what --numa-local confines to). A list that does not parse or a function without
 * one leaves no CPUs.
 */
static void test_enumerate_cpu_list(void **state)
{
	struct rig *g = rig_get(state);
	static const char *const fns[] = { "0000:01:00.0", "0000:02:00.0", "0000:03:00.0" };
	struct xpu_host *host = NULL;
	struct device_list l = {};
	_cleanup_free_ char *root = NULL;
	const char *tmp = getenv("TMPDIR");
	char path[4096];
	uint32_t seq = rig_next_seq(g);

	snprintf(path, sizeof(path), "%s/xpu-kmod-XXXXXX", isempty(tmp) ? "/tmp" : tmp);
	assert_non_null(mkdtemp(path));
	root = strdup(path);
	assert_non_null(root);
	for (const char *d = "sys\0sys/bus\0sys/bus/pci\0sys/bus/pci/devices\0"
			     "sys/bus/pci/devices/0000:01:00.0\0sys/bus/pci/devices/0000:02:00.0\0";
	     *d; d += strlen(d) + 1) {
		snprintf(path, sizeof(path), "%s/%s", root, d);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	test_put_file(root, "sys/bus/pci/devices/0000:01:00.0/local_cpulist", "1\n");
	test_put_file(root, "sys/bus/pci/devices/0000:02:00.0/local_cpulist", "1-x\n");
	assert_int_equal(host_open(root, &host), 0);
	g->b.host = host;

	for (size_t i = 0; i < ELEMENTSOF(fns); i++)
		rig_send(g, g->p.xpud,
			 msg_new(XPU_CMD_GET_DEVICE, fns[i], XPU_PCI_HEALTH_OK, NULL, "xpu/0"), seq,
			 NLM_F_MULTI);
	send_done(&g->p, seq);
	assert_int_equal(kmod_backend_ops.enumerate(&g->b, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.items[0]->numa_node, 1);
	assert_non_null(l.items[0]->cpu_list);
	assert_string_equal(l.items[0]->cpu_list, "1");
	assert_null(l.items[1]->cpu_list);
	assert_null(l.items[2]->cpu_list);
	device_list_clear(&l);
	g->b.host = NULL;
	host_free(host);
	assert_int_equal(fixture_destroy(root), 0);
}

static void test_default_resource(void **state)
{
	char *s = kmod_default_resource(0x1af4, 0x1041);

	assert_string_equal(s, "xpu.dev/pci-1af4-1041");
	free(s);
	s = kmod_default_resource(0x1234, 0x11e8);
	assert_string_equal(s, "xpu.dev/edu");
	free(s);
}

static void test_probe_simulated_root(void **state)
{
	struct xpu_host host = { .root = (char *)"/tmp/x", .is_real = false };
	struct xpu_backend b = { .ops = &kmod_backend_ops, .host = &host };
	char *reason = NULL;

	assert_true(kmod_backend_ops.priority > 0); /* wins over the generic PCI backend */
	assert_int_equal(kmod_backend_ops.probe(&b, &reason), -EOPNOTSUPP);
	assert_non_null(reason);
	free(reason);
}

/*
 * Without the module the backend is available, lists nothing and says why: it takes the devices
 * when the module's family appears (the controller's notification, as for a reload).
 */
static void test_probe_without_module(void **state)
{
	struct xpu_host host = { .root = (char *)"/", .is_real = true };
	struct xpu_backend b = { .ops = &kmod_backend_ops, .host = &host };
	struct device_list l = {};
	int r;

	r = kmod_backend_ops.probe(&b, &b.reason);
	if (r >= 0 && !b.reason) {
		kmod_backend_ops.close(&b);
		skip(); /* this machine has the module loaded */
	}
	assert_int_equal(r, 0);
	assert_non_null(strstr(b.reason, "xpu_pci kernel module is not loaded"));
	assert_int_equal(kmod_backend_ops.enumerate(&b, &l), 0);
	assert_int_equal(l.n, 0);
	assert_non_null(b.reason);
	kmod_backend_ops.close(&b);
	free(b.reason);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_healthy_edu),
		cmocka_unit_test(test_unhealthy_and_resource),
		cmocka_unit_test(test_removed),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test_setup_teardown(test_answer_get_in_turn, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_answer_dump, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_answer_error, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_answer_timeout, pair_setup, pair_teardown),
		cmocka_unit_test(test_parse_family),
		cmocka_unit_test_setup_teardown(test_dispatch_reload, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_request_reload, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_enumerate_cpu_list, rig_setup, rig_teardown),
		cmocka_unit_test(test_default_resource),
		cmocka_unit_test(test_probe_simulated_root),
		cmocka_unit_test(test_probe_without_module),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
