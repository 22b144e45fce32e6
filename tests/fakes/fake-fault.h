/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Run-time faults of the fake vendor libraries (tests/fakes/README.md, "Faults"): while the file
 * "<description>.fault" exists (the description named by $XPU_FAKE_NVML), a call of the kind it
 * names crashes, aborts, hangs, leaks, exits or writes garbage to stdout, as a vendor library can,
 * so that tests can prove that xpud survives it. The file is read at every call, so a test
 * creates and removes it while a process runs. Compiled into each fake and never exported.
 *
 * One line: "<where> <what> [<count>]", blanks between the words, surrounding blanks ignored.
 */
#pragma once

#pragma GCC visibility push(hidden)

/* The kinds of calls a fault line names; each fake says which of its functions are which. */
enum fake_fault_where {
	FAKE_FAULT_NONE,      /* no fault applies to the call; a malformed line still fails it */
	FAKE_FAULT_INIT,      /* "init": nvmlInit_v2, cuInit */
	FAKE_FAULT_QUERY,     /* "query": the device count, handles and per-device queries */
	FAKE_FAULT_APPLY,     /* "apply": NVML's MIG management */
	FAKE_FAULT_PROCESSES, /* "processes": NVML's process lists */
	_FAKE_FAULT_WHERE_MAX,
};

/*
 * The fault for a call of kind @where, done before the call takes any lock of its library.
 * Returns 0 without a file, when the line names another kind of call or its count is used up,
 * and after the faults that let the call go on ("leak", "garbage"); -ENOMEM when "leak" found no
 * memory; -EINVAL, with one line on stderr starting with @fake ("fake-nvml"), for a malformed
 * line, whatever @where. Does not return for "segv", "abort", "hang" and "exit".
 */
int fake_fault(const char *fake, enum fake_fault_where where);

#pragma GCC visibility pop
