// SPDX-License-Identifier: GPL-2.0-or-later
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "daemon/uevent.h"

#define UEVENT_BUFFER (8 * 1024) /* the kernel caps one uevent at 2 KiB of environment */

struct uevent_monitor {
	sd_event_source *source;
	int fd;
	bool netlink;
	char *path; /* the test socket we bound, removed on free */
	uevent_cb_t cb;
	void *userdata;
};

int uevent_parse(const char *buf, size_t len, struct uevent *ret)
{
	struct uevent ev = {};
	const char *at, *p, *end = buf + len;
	size_t hlen;

	if (len == 0 || buf[len] != '\0')
		return -EINVAL;
	hlen = strnlen(buf, len);
	at = memchr(buf, '@', hlen);
	if (!at || at == buf || at[1] != '/')
		return -EINVAL;

	ev.props = buf + hlen + 1;
	ev.props_len = hlen + 1 < len ? len - hlen - 1 : 0;
	for (p = buf + hlen + 1; p < end; p += strlen(p) + 1) {
		if (strncmp(p, "ACTION=", 7) == 0)
			ev.action = p + 7;
		else if (strncmp(p, "DEVPATH=", 8) == 0)
			ev.devpath = p + 8;
		else if (strncmp(p, "SUBSYSTEM=", 10) == 0)
			ev.subsystem = p + 10;
	}
	if (!ev.action || !ev.devpath)
		return -EINVAL;
	/* The header repeats ACTION and DEVPATH; a message where they disagree is not the
	 * kernel's. */
	if ((size_t)(at - buf) != strlen(ev.action) || strncmp(buf, ev.action, (size_t)(at - buf)) != 0 ||
	    strcmp(at + 1, ev.devpath) != 0)
		return -EINVAL;
	*ret = ev;
	return 0;
}

bool uevent_is_relevant(const struct uevent *ev)
{
	static const char *const subsystems[] = { "pci", "drm", "accel", "apex", "misc" };

	if (strncmp(ev->devpath, "/devices/pci", 12) == 0)
		return true;
	for (size_t i = 0; ev->subsystem && i < ELEMENTSOF(subsystems); i++)
		if (streq(ev->subsystem, subsystems[i]))
			return true;
	return false;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct uevent_monitor *m = userdata;

	for (;;) {
		char buf[UEVENT_BUFFER + 1];
		struct sockaddr_nl snl = {};
		struct iovec iov = { .iov_base = buf, .iov_len = UEVENT_BUFFER };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct uevent ev;
		ssize_t n;

		if (m->netlink) {
			mh.msg_name = &snl;
			mh.msg_namelen = sizeof(snl);
		}
		n = recvmsg(fd, &mh, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			/* ENOBUFS: the kernel dropped events. Tell the owner with a synthetic
			 * change so it rescans instead of trusting a stale view. */
			if (errno == ENOBUFS) {
				struct uevent all = { "change", "/devices/pci", "pci" };

				m->cb(&all, m->userdata);
				continue;
			}
			return 0;
		}
		if (mh.msg_flags & MSG_TRUNC)
			continue;
		/* Only the kernel (port 0) speaks on the kernel group. */
		if (m->netlink && (mh.msg_namelen != sizeof(snl) || snl.nl_pid != 0))
			continue;
		buf[n] = '\0';
		if (uevent_parse(buf, (size_t)n, &ev) < 0)
			continue;
		m->cb(&ev, m->userdata);
	}
}

static int open_netlink(void)
{
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK, .nl_groups = 1 /* kernel */ };
	_cleanup_close_ int fd = -EBADF;
	int sz = 4 * 1024 * 1024;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (fd < 0)
		return -errno;
	/* Bursts (a driver load binding eight GPUs) must not overflow the queue; FORCE needs
	 * CAP_NET_ADMIN, the plain variant is the fallback. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (bind(fd, (struct sockaddr *)&snl, sizeof(snl)) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static int open_test_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int uevent_monitor_new(sd_event *e, const char *test_socket, uevent_cb_t cb, void *userdata,
		       struct uevent_monitor **ret)
{
	struct uevent_monitor *m;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cb = cb;
	m->userdata = userdata;
	m->netlink = !test_socket;
	m->fd = test_socket ? open_test_socket(test_socket) : open_netlink();
	if (m->fd < 0) {
		r = m->fd;
		free(m);
		return r;
	}
	if (test_socket && !(m->path = strdup(test_socket))) {
		uevent_monitor_free(m);
		return -ENOMEM;
	}
	r = sd_event_add_io(e, &m->source, m->fd, EPOLLIN, on_io, m);
	if (r < 0) {
		uevent_monitor_free(m);
		return r;
	}
	(void)sd_event_source_set_description(m->source, "uevent");
	*ret = m;
	return 0;
}

struct uevent_monitor *uevent_monitor_free(struct uevent_monitor *m)
{
	if (!m)
		return NULL;
	sd_event_source_disable_unref(m->source);
	safe_close(m->fd);
	if (m->path)
		(void)unlink(m->path);
	free(m->path);
	free(m);
	return NULL;
}
