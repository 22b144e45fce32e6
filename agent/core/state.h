/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What xpud must remember across restarts and crashes: the allocations it acknowledged and the
 * offer applied to each device that has any (so that a policy changed while xpud was down does
 * not withdraw slices in use). One JSON document, <state-dir>/state.json, replaced atomically:
 * written to a temporary file, fsync'd, renamed over the old one, and the directory fsync'd. A
 * caller acknowledges an allocation or release only after state_save() returned 0, so whatever
 * instant xpud is killed at, the file on disk holds either the state before or after.
 */
#pragma once

#include "core/alloc.h"
#include "core/policy.h"

#define STATE_DEFAULT_DIR "/var/lib/xpud"
#define STATE_FILE "state.json"
#define STATE_VERSION 1

/* The offer in effect on one device, as persisted. */
struct applied_offer {
	char *device_id;
	struct offer offer;
};

struct state {
	struct ledger ledger;
	struct applied_offer *applied;
	size_t n_applied;
};

void state_done(struct state *s);
/* The applied offer of @device_id, or NULL. */
const struct offer *state_applied(const struct state *s, const char *device_id);
/* Sets (replacing) the applied offer of @device_id; a copy is taken. 0 or -ENOMEM. */
int state_set_applied(struct state *s, const char *device_id, const struct offer *o);
/* Drops the applied offer of @device_id, if any. */
void state_unset_applied(struct state *s, const char *device_id);

/*
 * Loads <dir>/state.json into @s (initialised empty by the caller). A missing file is an empty
 * state (0). A file that cannot be parsed or fails validation (truncated, not JSON, wrong
 * version, an allocation without id or slices, a slice held twice, ...) is renamed to
 * state.json.corrupt (replacing an older one), @s is left holding whatever valid allocations
 * could be recovered from it (none if it is not JSON at all), *ret_warning says what happened
 * and 1 is returned. -errno only when the directory cannot be read or the file renamed.
 */
int state_load(const char *dir, struct state *s, char **ret_warning);

/*
 * Writes @s to <dir>/state.json atomically and durably (see above), creating <dir> (0700) if
 * missing. 0 or -errno: -EINVAL when @s holds something state_load() would not read back (a
 * malformed id, a slice held twice, ...: nothing is written), or the syscall's error, in which
 * case the temporary file is gone and the old state.json untouched. Logs at debug level only.
 * The format is docs/state.md.
 */
int state_save(const char *dir, const struct state *s);

/*
 * Serialisation, exposed for the fuzzer and tests: JSON text to state and back. state_from_json
 * fills @s (initialised empty) and returns 0, or returns with a one-line reason in *ret_error:
 * -EBADMSG when nothing could be read (not JSON, wrong version; @s stays empty), -EINVAL when
 * some entries were invalid or conflicted with an earlier one (@s holds all the others), or
 * -ENOMEM (no reason). state_to_json returns the document (caller frees, no trailing newline;
 * equal states give equal text), or NULL when state_save() would refuse @s or on OOM.
 */
int state_from_json(const char *text, size_t len, struct state *s, char **ret_error);
char *state_to_json(const struct state *s);
