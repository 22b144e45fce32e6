// SPDX-License-Identifier: GPL-2.0-or-later
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/macro.h"
#include "shared/parse.h"
#include "shared/sockaddr.h"

static int parse_port(const char *s, in_port_t *ret)
{
	unsigned p;

	/* digits only: no sign, no blanks, no leading zeros to be read as octal by anyone */
	if (!*s || strspn(s, "0123456789") != strlen(s) || (s[0] == '0' && s[1]))
		return -EINVAL;
	if (safe_atou(s, &p) < 0 || p == 0 || p > 65535)
		return -EINVAL;
	*ret = htons((in_port_t)p);
	return 0;
}

int listen_address_parse(const char *s, struct listen_address *ret)
{
	struct listen_address a = {};
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	in_port_t port;
	size_t n;

	if (!s)
		return -EINVAL;
	if (strncmp(s, "unix:", strlen("unix:")) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&a.sa;
		const char *path = s + strlen("unix:");

		if (path[0] != '/' || strlen(path) >= sizeof(sun->sun_path))
			return -EINVAL;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		a.len = sizeof(*sun);
		a.is_unix = true;
		*ret = a;
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || parse_port(colon + 1, &port) < 0)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (host[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.sa;

		if (n < 3 || host[n - 1] != ']')
			return -EINVAL;
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		a.len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		a.len = sizeof(*sin);
	}
	*ret = a;
	return 0;
}

bool listen_address_valid(const char *s)
{
	struct listen_address a;

	return listen_address_parse(s, &a) == 0;
}

/* Removes a socket at @path that nobody serves; refuses any other file and a served socket. */
static int unlink_stale(const struct sockaddr_un *sun)
{
	_cleanup_close_ int probe = -EBADF;
	struct stat st;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	if (connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ||
	    errno != ECONNREFUSED)
		return -EADDRINUSE;
	return RET_NERRNO(unlink(sun->sun_path));
}

int listen_address_open(const struct listen_address *a, unsigned mode)
{
	_cleanup_close_ int fd = -EBADF;
	int r, one = 1;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (a->is_unix) {
		r = unlink_stale((const struct sockaddr_un *)&a->sa);
		if (r < 0)
			return r;
	} else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		return -errno;
	}
	if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0)
		return -errno;
	if (a->is_unix && chmod(((const struct sockaddr_un *)&a->sa)->sun_path, mode) < 0)
		return -errno;
	if (listen(fd, 64) < 0)
		return -errno;
	return TAKE_FD(fd);
}
