/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A private dbus-daemon with the fake systemd manager on it (tests/fakes/fake-systemd.c), for
 * the tests of the systemd path of enforcement. Skips the test (77) without dbus-daemon or the
 * fake.
 */
#pragma once

#include <jansson.h>
#include <sys/types.h>

struct test_systemd {
	pid_t daemon, fake;
	char *dir;     /* a temporary directory: the bus socket, its configuration, the record */
	char *address; /* the bus's D-Bus address */
	char *record;  /* the fake's record of calls (JSON lines) */
};

struct test_systemd *test_systemd_start(void);
/* Stops the fake (the bus stays: systemd is not on it any more). */
void test_systemd_stop_fake(struct test_systemd *s);
void test_systemd_free(struct test_systemd *s);
/* Sets the fake's fault line (see fake-systemd.c), or none with NULL. */
void test_systemd_fault(struct test_systemd *s, const char *line);
/* The calls of @method recorded so far, oldest first (a new array). */
json_t *test_systemd_calls(const struct test_systemd *s, const char *method);
/* The units the fake holds, one per line ("" for none; malloc'd). */
char *test_systemd_units(const struct test_systemd *s);
/* Waits (5 s at most) until the fake holds no unit; the units still held then ("" when none). */
char *test_systemd_wait_no_units(const struct test_systemd *s);
