// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "systemd-bus.h"
#include "testutil.h"

/* Starts @argv with its stdout on a pipe and reads its first line into @line. */
static pid_t spawn_line(char *const argv[], char *line, size_t size)
{
	int p[2];
	pid_t pid;
	FILE *f;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	assert_non_null(f);
	if (!fgets(line, (int)size, f))
		line[0] = 0;
	fclose(f);
	line[strcspn(line, "\n")] = 0;
	return pid;
}

struct test_systemd *test_systemd_start(void)
{
	const char *fake = test_env("XPU_FAKE_SYSTEMD");
	struct test_systemd *s = calloc(1, sizeof(*s));
	char tmpl[] = "/tmp/xpu-systemd-XXXXXX", conf[4096], line[4096];
	FILE *f;

	assert_non_null(s);
	if (access("/usr/bin/dbus-daemon", X_OK) < 0 || access(fake, X_OK) < 0) {
		fprintf(stderr, "no dbus-daemon or fake-systemd: skipped\n");
		exit(77);
	}
	assert_non_null(mkdtemp(tmpl));
	s->dir = strdup(tmpl);
	snprintf(conf, sizeof(conf), "%s/bus.conf", s->dir);
	f = fopen(conf, "we");
	assert_non_null(f);
	fprintf(
	    f,
	    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
	    " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
	    "<busconfig><type>session</type><listen>unix:path=%s/bus</listen>"
	    "<auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\"/>"
	    "<allow receive_sender=\"*\"/><allow own=\"*\"/></policy></busconfig>\n",
	    s->dir);
	assert_int_equal(fclose(f), 0);
	{
		char arg[4200];
		char *argv[] = {"/usr/bin/dbus-daemon", arg, "--nofork", "--print-address=1", NULL};

		snprintf(arg, sizeof(arg), "--config-file=%s", conf);
		s->daemon = spawn_line(argv, line, sizeof(line));
	}
	if (!line[0])
		fail_msg("dbus-daemon did not start");
	s->address = strdup(line);
	assert_true(asprintf(&s->record, "%s/calls", s->dir) > 0);
	{
		char *argv[] = {(char *)fake, s->address, s->record, NULL};

		s->fake = spawn_line(argv, line, sizeof(line));
	}
	if (strcmp(line, "ready") != 0)
		fail_msg("fake-systemd did not start");
	return s;
}

static void stop(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	(void)waitpid(*pid, NULL, 0);
	*pid = 0;
}

void test_systemd_stop_fake(struct test_systemd *s)
{
	stop(&s->fake);
}

void test_systemd_free(struct test_systemd *s)
{
	char cmd[4200];

	if (!s)
		return;
	stop(&s->fake);
	stop(&s->daemon);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", s->dir);
	free(s->dir);
	free(s->address);
	free(s->record);
	free(s);
}

void test_systemd_fault(struct test_systemd *s, const char *line)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s.fault", s->record);
	if (!line) {
		(void)unlink(path);
		return;
	}
	f = fopen(path, "we");
	assert_non_null(f);
	fprintf(f, "%s\n", line);
	assert_int_equal(fclose(f), 0);
}

json_t *test_systemd_calls(const struct test_systemd *s, const char *method)
{
	json_t *all = json_array();
	char line[65536];
	FILE *f = fopen(s->record, "re");

	assert_non_null(all);
	while (f && fgets(line, sizeof(line), f)) {
		json_t *doc = json_loads(line, 0, NULL);

		assert_non_null(doc);
		if (strcmp(json_string_value(json_object_get(doc, "method")) ?: "", method) == 0)
			json_array_append_new(all, doc);
		else
			json_decref(doc);
	}
	if (f)
		fclose(f);
	return all;
}

char *test_systemd_units(const struct test_systemd *s)
{
	char path[4200];
	char *text = NULL;

	snprintf(path, sizeof(path), "%s.units", s->record);
	if (read_attr_at(AT_FDCWD, path, 64 * 1024, &text) < 0)
		text = strdup("");
	assert_non_null(text);
	return text;
}

char *test_systemd_wait_no_units(const struct test_systemd *s)
{
	long long until = test_now_ms() + 5000;
	char *text;

	for (;;) {
		text = test_systemd_units(s);
		if (!text[0] || test_now_ms() > until)
			return text;
		free(text);
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	}
}
