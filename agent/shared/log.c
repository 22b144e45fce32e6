// SPDX-License-Identifier: GPL-2.0-or-later
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static enum log_target target = LOG_TARGET_STDERR;

static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_setup(enum log_target t)
{
	if (t == LOG_TARGET_AUTO)
		t = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
	target = t;
}

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

int log_level_from_string(const char *s)
{
	static const char *const names[] = { "emerg",  "alert",	 "crit", "err",
					     "warning", "notice", "info", "debug" };

	if (!s)
		return -EINVAL;
	if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
		return s[0] - '0';
	if (streq(s, "error"))
		return LOG_ERR;
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (streq(s, names[i]))
			return (int)i;
	return -EINVAL;
}

int log_internal_fields(int level, int error, const char *device, const char *pci,
			const char *const *fields, const char *file, int line, const char *func,
			const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	error = error < 0 ? -error : error;
	if (level > max_level)
		return -error;

	errno = error;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	if (target == LOG_TARGET_JOURNAL) {
		char f[8][2200];
		struct iovec iov[8 + LOG_EXTRA_FIELDS];
		int n = 0, k;

		snprintf(f[n++], sizeof(f[0]), "MESSAGE=%s", buf);
		snprintf(f[n++], sizeof(f[0]), "PRIORITY=%d", level);
		snprintf(f[n++], sizeof(f[0]), "CODE_FILE=%s", file);
		snprintf(f[n++], sizeof(f[0]), "CODE_LINE=%d", line);
		snprintf(f[n++], sizeof(f[0]), "CODE_FUNC=%s", func);
		if (error)
			snprintf(f[n++], sizeof(f[0]), "ERRNO=%d", error);
		if (device)
			snprintf(f[n++], sizeof(f[0]), "XPU_DEVICE=%s", device);
		if (pci)
			snprintf(f[n++], sizeof(f[0]), "XPU_PCI=%s", pci);
		for (k = 0; k < n; k++)
			iov[k] = (struct iovec){ .iov_base = f[k], .iov_len = strlen(f[k]) };
		for (size_t i = 0; fields && fields[i] && i < LOG_EXTRA_FIELDS; i++)
			iov[k++] = (struct iovec){ .iov_base = (char *)fields[i],
						   .iov_len = strlen(fields[i]) };
		sd_journal_sendv(iov, k);
	} else {
		if (device)
			fprintf(stderr, "%s: %s\n", device, buf);
		else
			fprintf(stderr, "%s\n", buf);
	}
	return -error;
}
