// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Guest-side checks of the xpu_pci module, run by tests/vm/init.sh inside the QEMU guest and
 * linked statically (the guest has busybox and little else). Netlink is spoken raw here, not
 * through libnl, because half of what this program sends is deliberately malformed.
 *
 *   xpu-vmcheck info DEV                  print the ioctl's view of the device
 *   xpu-vmcheck factorial DEV N EXPECTED  one job through the ioctl and the interrupt
 *   xpu-vmcheck bad-ioctl DEV             bad ioctl arguments are refused with the right errno
 *   xpu-vmcheck genl-dump                 print the family's dump, one device a line
 *   xpu-vmcheck genl-bad                  malformed requests are refused
 *   xpu-vmcheck removed DEV PCI_ADDR      an open file of a removed device gets -ENODEV
 *   xpu-vmcheck fuzz DEV SECONDS SEED     random ioctls and netlink messages for a bounded time
 *
 * Exit status 0 when every expectation held; each failure is printed on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xpu/uapi/xpu_pci.h>

static int failures;

#define EXPECT(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__);                     \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* ---- raw generic netlink ---------------------------------------------------------------- */

struct nlbuf {
	unsigned char data[8192];
	size_t len;
};

static void nl_start(struct nlbuf *b, uint16_t type, uint16_t flags, uint8_t cmd, uint8_t version)
{
	struct nlmsghdr *h = (void *)b->data;
	struct genlmsghdr *g = NLMSG_DATA(h);

	memset(b->data, 0, NLMSG_HDRLEN + GENL_HDRLEN);
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	h->nlmsg_seq = 1;
	g->cmd = cmd;
	g->version = version;
	b->len = NLMSG_HDRLEN + GENL_HDRLEN;
	h->nlmsg_len = b->len;
}

static void nl_attr(struct nlbuf *b, uint16_t type, const void *data, size_t len)
{
	struct nlmsghdr *h = (void *)b->data;
	struct nlattr *a = (void *)(b->data + b->len);

	if (b->len + NLA_HDRLEN + NLA_ALIGN(len) > sizeof(b->data))
		return;
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((unsigned char *)a + NLA_HDRLEN, data, len);
	memset((unsigned char *)a + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
	b->len += NLA_HDRLEN + NLA_ALIGN(len);
	h->nlmsg_len = b->len;
}

static int nl_open(void)
{
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Calls @cb for each reply message; returns the ack's error (0 or -errno) or -errno of I/O. */
static int nl_transact(int fd, struct nlbuf *req,
		       void (*cb)(struct nlmsghdr *h, void *userdata), void *userdata)
{
	static unsigned char rbuf[65536];
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

	if (sendto(fd, req->data, req->len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
		struct nlmsghdr *h;

		if (n < 0)
			return -errno;
		for (h = (void *)rbuf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (cb)
				cb(h, userdata);
		}
	}
}

static void family_cb(struct nlmsghdr *h, void *userdata)
{
	struct nlattr *a = (void *)((unsigned char *)NLMSG_DATA(h) + GENL_HDRLEN);
	int len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;

	while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
		if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID)
			*(uint16_t *)userdata = *(uint16_t *)((unsigned char *)a + NLA_HDRLEN);
		len -= NLA_ALIGN(a->nla_len);
		a = (void *)((unsigned char *)a + NLA_ALIGN(a->nla_len));
	}
}

static int family_id(int fd)
{
	struct nlbuf b;
	uint16_t id = 0;
	int r;

	nl_start(&b, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, 1);
	nl_attr(&b, CTRL_ATTR_FAMILY_NAME, XPU_GENL_NAME, sizeof(XPU_GENL_NAME));
	r = nl_transact(fd, &b, family_cb, &id);
	if (r < 0)
		return r;
	return id ?: -ENOENT;
}

static const struct nlattr *attr_find(struct nlmsghdr *h, int type)
{
	const struct nlattr *a = (void *)((unsigned char *)NLMSG_DATA(h) + GENL_HDRLEN);
	int len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;

	while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		len -= NLA_ALIGN(a->nla_len);
		a = (const void *)((const unsigned char *)a + NLA_ALIGN(a->nla_len));
	}
	return NULL;
}

#define ATTR_PAYLOAD(a) ((const void *)((const unsigned char *)(a) + NLA_HDRLEN))

static void dump_cb(struct nlmsghdr *h, void *userdata)
{
	const struct nlattr *idx = attr_find(h, XPU_A_INDEX), *addr = attr_find(h, XPU_A_PCI_ADDR);
	const struct nlattr *health = attr_find(h, XPU_A_HEALTH), *id = attr_find(h, XPU_A_ID_REG);
	static const char *const names[] = { "unknown", "healthy", "unhealthy", "removed" };
	unsigned hv;

	(*(int *)userdata)++;
	EXPECT(idx && addr && health, "dump message lacks index, address or health");
	if (!idx || !addr || !health)
		return;
	hv = *(const uint8_t *)ATTR_PAYLOAD(health);
	printf("xpu%u %s %s id=0x%08x\n", *(const uint32_t *)ATTR_PAYLOAD(idx),
	       (const char *)ATTR_PAYLOAD(addr), hv < 4 ? names[hv] : "?",
	       id ? *(const uint32_t *)ATTR_PAYLOAD(id) : 0);
}

static int cmd_genl_dump(void)
{
	struct nlbuf b;
	int fd = nl_open(), fam, n = 0, r;

	if (fd < 0)
		return 1;
	fam = family_id(fd);
	EXPECT(fam > 0, "family %s not found: %d", XPU_GENL_NAME, fam);
	if (fam <= 0)
		return 1;
	nl_start(&b, fam, NLM_F_DUMP, XPU_CMD_GET_DEVICE, XPU_GENL_VERSION);
	r = nl_transact(fd, &b, dump_cb, &n);
	EXPECT(r == 0, "dump failed: %s", strerror(-r));
	printf("%d devices\n", n);
	close(fd);
	return failures ? 1 : 0;
}

static int genl_expect(int fd, struct nlbuf *b, int expected, const char *what)
{
	int n = 0, r = nl_transact(fd, b, dump_cb, &n);

	EXPECT(r == expected, "%s: got %d (%s), expected %d", what, r, strerror(-r), expected);
	if (r == expected)
		printf("refused as expected: %s (%s)\n", what, strerror(-r));
	return r;
}

static int cmd_genl_bad(void)
{
	char longstr[300];
	struct nlbuf b;
	uint8_t u8 = 0;
	uint32_t u32 = 999;
	int fd = nl_open(), fam;

	if (fd < 0)
		return 1;
	fam = family_id(fd);
	if (fam <= 0)
		return 1;
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	genl_expect(fd, &b, -EINVAL, "GET without index or address");
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	nl_attr(&b, XPU_A_INDEX, &u8, 1);
	genl_expect(fd, &b, -EINVAL, "index attribute of the wrong size");
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	nl_attr(&b, XPU_A_INDEX, &u32, 4);
	genl_expect(fd, &b, -ENODEV, "index of no device");
	memset(longstr, 'a', sizeof(longstr) - 1);
	longstr[sizeof(longstr) - 1] = 0;
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	nl_attr(&b, XPU_A_PCI_ADDR, longstr, sizeof(longstr));
	genl_expect(fd, &b, -EINVAL, "oversized address string");
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	nl_attr(&b, XPU_A_PCI_ADDR, "0000:00:00.0", 12); /* no terminating NUL */
	genl_expect(fd, &b, -EINVAL, "address string without NUL");
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	nl_attr(&b, XPU_A_HEALTH, &u8, 1);
	genl_expect(fd, &b, -EINVAL, "attribute that is output only");
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	nl_attr(&b, 200, &u32, 4);
	genl_expect(fd, &b, -EINVAL, "unknown attribute type");
	nl_start(&b, fam, 0, 77, 1);
	genl_expect(fd, &b, -EOPNOTSUPP, "unknown command");
	nl_start(&b, fam, 0, XPU_CMD_DEVICE_ADDED, 1);
	genl_expect(fd, &b, -EOPNOTSUPP, "event command sent as a request");
	nl_start(&b, fam, 0, XPU_CMD_GET_DEVICE, 1);
	((struct genlmsghdr *)NLMSG_DATA((struct nlmsghdr *)b.data))->reserved = 1;
	nl_attr(&b, XPU_A_INDEX, &u32, 4);
	genl_expect(fd, &b, -EINVAL, "non-zero reserved header field");
	close(fd);
	return failures ? 1 : 0;
}

/* ---- ioctls ------------------------------------------------------------------------------ */

static int cmd_info(const char *dev)
{
	struct xpu_pci_ioc_info info;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);

	EXPECT(fd >= 0, "open %s: %m", dev);
	if (fd < 0)
		return 1;
	EXPECT(ioctl(fd, XPU_PCI_IOC_INFO, &info) == 0, "INFO: %m");
	printf("uapi=%u index=%u %s %04x:%04x id=0x%08x health=%u numa=%d flags=0x%x bar0=%llu "
	       "open=%u\n",
	       info.uapi_version, info.index, info.pci_addr, info.vendor, info.device, info.id_reg,
	       info.health, info.numa_node, info.flags, (unsigned long long)info.bar_size[0],
	       info.open_count);
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_factorial(const char *dev, unsigned n, unsigned expected)
{
	struct xpu_pci_factorial f = { .input = n, .timeout_ms = 5000 };
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	EXPECT(fd >= 0, "open %s: %m", dev);
	if (fd < 0)
		return 1;
	EXPECT(ioctl(fd, XPU_PCI_IOC_FACTORIAL, &f) == 0, "FACTORIAL(%u): %m", n);
	EXPECT(f.result == expected, "%u! = %u, expected %u", n, f.result, expected);
	printf("%u! = %u\n", n, f.result);
	close(fd);
	return failures ? 1 : 0;
}

static void ioctl_expect(int fd, unsigned long cmd, void *arg, int expected, const char *what)
{
	int r = ioctl(fd, cmd, arg) < 0 ? -errno : 0;

	EXPECT(r == expected, "%s: got %d (%s), expected %d", what, r, strerror(-r), expected);
	if (r == expected)
		printf("refused as expected: %s (%s)\n", what, strerror(-r));
}

static int cmd_bad_ioctl(const char *dev)
{
	struct xpu_pci_factorial f = {};
	int fd = open(dev, O_RDWR | O_CLOEXEC), ro = open(dev, O_RDONLY | O_CLOEXEC);

	EXPECT(fd >= 0 && ro >= 0, "open %s: %m", dev);
	if (fd < 0 || ro < 0)
		return 1;
	ioctl_expect(fd, _IO(XPU_PCI_IOC_MAGIC, 99), NULL, -ENOTTY, "unknown command");
	ioctl_expect(fd, _IOR('T', 0, int), NULL, -ENOTTY, "another driver's command");
	ioctl_expect(fd, XPU_PCI_IOC_INFO, (void *)16, -EFAULT, "INFO to a bad pointer");
	ioctl_expect(fd, XPU_PCI_IOC_FACTORIAL, (void *)16, -EFAULT, "FACTORIAL from a bad pointer");
	f.input = XPU_PCI_FACTORIAL_MAX + 1;
	ioctl_expect(fd, XPU_PCI_IOC_FACTORIAL, &f, -EINVAL, "factorial input out of range");
	f.input = 0xffffffff;
	ioctl_expect(fd, XPU_PCI_IOC_FACTORIAL, &f, -EINVAL, "factorial input 2^32-1");
	f = (struct xpu_pci_factorial){ .input = 3, .timeout_ms = XPU_PCI_TIMEOUT_MS_MAX + 1 };
	ioctl_expect(fd, XPU_PCI_IOC_FACTORIAL, &f, -EINVAL, "timeout out of range");
	f = (struct xpu_pci_factorial){ .input = 3, .flags = 1 };
	ioctl_expect(fd, XPU_PCI_IOC_FACTORIAL, &f, -EINVAL, "unknown flags");
	f = (struct xpu_pci_factorial){ .input = 3 };
	ioctl_expect(ro, XPU_PCI_IOC_FACTORIAL, &f, -EBADF, "work submitted on a read-only file");
	ioctl_expect(ro, XPU_PCI_IOC_RESET, NULL, -EBADF, "reset on a read-only file");
	close(fd);
	close(ro);
	return failures ? 1 : 0;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int cmd_removed(const char *dev, const char *addr)
{
	struct xpu_pci_ioc_info info;
	char path[256];
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	EXPECT(fd >= 0, "open %s: %m", dev);
	if (fd < 0)
		return 1;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", addr);
	EXPECT(write_file(path, "1") == 0, "remove %s failed", addr);
	ioctl_expect(fd, XPU_PCI_IOC_INFO, &info, -ENODEV, "INFO on a removed device");
	ioctl_expect(fd, XPU_PCI_IOC_RESET, NULL, -ENODEV, "RESET on a removed device");
	EXPECT(access(dev, F_OK) < 0, "%s still exists after removal", dev);
	close(fd);
	EXPECT(write_file("/sys/bus/pci/rescan", "1") == 0, "rescan failed");
	return failures ? 1 : 0;
}

/* ---- fuzz -------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

static void fuzz_ioctl(int fd)
{
	static const unsigned long cmds[] = { XPU_PCI_IOC_INFO, XPU_PCI_IOC_FACTORIAL,
					      XPU_PCI_IOC_RESET };
	unsigned char buf[256];
	unsigned long cmd;
	void *arg = buf;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = rnd();
	switch (rnd() % 4) {
	case 0:
		cmd = rnd();
		break;
	case 1:
		cmd = _IOC(rnd() % 4, XPU_PCI_IOC_MAGIC, rnd() % 8, rnd() % 64);
		break;
	default:
		cmd = cmds[rnd() % 3];
	}
	if (cmd == XPU_PCI_IOC_FACTORIAL) {
		struct xpu_pci_factorial *f = (void *)buf;

		/* mostly valid inputs with short timeouts, so that the interrupt path is hit */
		if (rnd() % 2) {
			f->input %= 20;
			f->timeout_ms %= 200;
			f->flags = rnd() % 8 == 0;
		}
	}
	if (rnd() % 8 == 0)
		arg = (void *)(uintptr_t)(rnd() % 3 ? rnd() : 0);
	ioctl(fd, cmd, arg);
}

static void fuzz_genl(int nl, int fam)
{
	struct nlbuf b;
	unsigned char payload[64];
	unsigned nattrs = rnd() % 5;

	nl_start(&b, rnd() % 16 ? fam : rnd() % 64, rnd() % 4 ? 0 : NLM_F_DUMP, rnd() % 8,
		 rnd() % 3);
	for (unsigned i = 0; i < nattrs; i++) {
		size_t len = rnd() % sizeof(payload);

		for (size_t j = 0; j < len; j++)
			payload[j] = rnd() % 4 ? 'a' + rnd() % 26 : rnd();
		nl_attr(&b, rnd() % (XPU_A_MAX + 3), payload, len);
	}
	if (rnd() % 16 == 0 && b.len > NLMSG_HDRLEN) /* truncated or overlong length fields */
		((struct nlmsghdr *)b.data)->nlmsg_len = rnd() % (b.len + 32);
	if (rnd() % 16 == 0 && b.len > NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN)
		((struct nlattr *)(b.data + NLMSG_HDRLEN + GENL_HDRLEN))->nla_len = rnd();
	nl_transact(nl, &b, NULL, NULL);
}

static int cmd_fuzz(const char *dev, unsigned seconds, unsigned seed)
{
	time_t end = time(NULL) + seconds;
	unsigned long n_ioctl = 0, n_genl = 0;
	struct timeval tv = { .tv_usec = 200000 };
	int fd = open(dev, O_RDWR | O_CLOEXEC), nl = nl_open(), fam;

	EXPECT(fd >= 0 && nl >= 0, "open: %m");
	if (fd < 0 || nl < 0)
		return 1;
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fam = family_id(nl);
	EXPECT(fam > 0, "family not found");
	rng_state = seed ? seed : 1;
	while (time(NULL) < end) {
		if (rnd() % 2) {
			fuzz_ioctl(fd);
			n_ioctl++;
		} else {
			fuzz_genl(nl, fam);
			n_genl++;
		}
	}
	printf("fuzz: %lu ioctls, %lu netlink messages in %us (seed %u)\n", n_ioctl, n_genl,
	       seconds, seed);
	close(fd);
	close(nl);
	return failures ? 1 : 0;
}

static unsigned arg_uint(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || end == s || v > UINT32_MAX) {
		fprintf(stderr, "bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : "";

	if (!strcmp(verb, "info") && argc == 3)
		return cmd_info(argv[2]);
	if (!strcmp(verb, "factorial") && argc == 5)
		return cmd_factorial(argv[2], arg_uint(argv[3]), arg_uint(argv[4]));
	if (!strcmp(verb, "bad-ioctl") && argc == 3)
		return cmd_bad_ioctl(argv[2]);
	if (!strcmp(verb, "genl-dump") && argc == 2)
		return cmd_genl_dump();
	if (!strcmp(verb, "genl-bad") && argc == 2)
		return cmd_genl_bad();
	if (!strcmp(verb, "removed") && argc == 4)
		return cmd_removed(argv[2], argv[3]);
	if (!strcmp(verb, "fuzz") && argc == 5)
		return cmd_fuzz(argv[2], arg_uint(argv[3]), arg_uint(argv[4]));
	fprintf(stderr, "usage: see the comment at the top of xpu-vmcheck.c\n");
	return 2;
}
