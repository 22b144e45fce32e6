/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Logging: structured journal entries when stderr is connected to the journal (systemd sets
 * JOURNAL_STREAM), plain lines on stderr otherwise. "%m" prints the error passed to *_errno().
 * Every log_*_errno() returns -abs(error), so handlers can "return log_error_errno(r, ...);".
 */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

enum log_target {
	LOG_TARGET_AUTO,    /* journal if JOURNAL_STREAM matches stderr, else stderr */
	LOG_TARGET_STDERR,
	LOG_TARGET_JOURNAL,
};

void log_setup(enum log_target target);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Parses "debug", "info", "notice", "warning", "err"/"error" or a number 0..7. */
int log_level_from_string(const char *s);

/*
 * @device and @pci become XPU_DEVICE= and XPU_PCI= journal fields when set; @fields is NULL or
 * a NULL-terminated list of more "KEY=value" fields (at most LOG_EXTRA_FIELDS are sent), which
 * only the journal shows.
 */
#define LOG_EXTRA_FIELDS 8
int log_internal_fields(int level, int error, const char *device, const char *pci,
			const char *const *fields, const char *file, int line, const char *func,
			const char *fmt, ...) _printf_(9, 10);
#define log_internal(level, error, device, pci, file, line, func, ...)                            \
	log_internal_fields(level, error, device, pci, NULL, file, line, func, __VA_ARGS__)

#define log_full_errno(level, error, ...)                                                          \
	log_internal(level, error, NULL, NULL, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_device_full_errno(level, error, dev, pci, ...)                                         \
	log_internal(level, error, dev, pci, __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_device_fields_errno(level, error, dev, pci, fields, ...)                              \
	log_internal_fields(level, error, dev, pci, fields, __FILE__, __LINE__, __func__,          \
			    __VA_ARGS__)

#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)
#define log_oom() log_full_errno(LOG_ERR, ENOMEM, "Out of memory.")
