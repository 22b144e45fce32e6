/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Crash injection for tests: fault_point("NAME") kills the process with SIGKILL when the
 * environment variable XPU_FAULT_KILL_AT names that point, so that a test can stop xpud at
 * every step of a state change and check what it finds after a restart. Costs one string
 * compare when unset; never set in production.
 */
#pragma once

void fault_point(const char *name);
