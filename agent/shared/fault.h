/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Crash injection for tests: fault_point("NAME") kills the process with SIGKILL when the
 * environment variable XPU_FAULT_KILL_AT names that point, so that a test can stop xpud at
 * every step of a state change and check what it finds after a restart. A point inside a
 * shared step (saving the state) can be aimed at one operation: while fault_context("grant")
 * is in effect, fault_point("state-before-rename") also answers to "grant/state-before-rename".
 * Costs a string compare when unset; never set in production.
 */
#pragma once

void fault_point(const char *name);
/* Sets the operation that fault points belong to (NULL: none). */
void fault_context(const char *operation);

/*
 * 0, or -EAGAIN when the environment variable XPU_FAULT_FAIL_AT names @name: an error that a
 * test cannot provoke from outside (a thread that cannot be started). Read at every call, so
 * that a test may set it between calls in its own process. Never set in production.
 */
int fault_error(const char *name);
