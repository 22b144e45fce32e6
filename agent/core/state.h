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
#define STATE_LOCK_FILE "xpud.lock" /* held by the xpud that uses the directory */
#define STATE_VERSION 1

/* The offer in effect on one device, as persisted. */
struct applied_offer {
	char *device_id;
	struct offer offer;
};

/* A device withdrawn by an operator: its free slices are not offered until uncordoned. */
struct device_cordon {
	char *device_id;
	char *reason;
	uint64_t since_usec; /* CLOCK_REALTIME */
};

/* A partition change of one device in progress (services/repartition.c drives it). */
enum repartition_phase {
	REPARTITION_DRAINING,	 /* withdrawn, waiting for its slices to be released */
	REPARTITION_APPLYING,	 /* idle: the new layout is being made */
	REPARTITION_ROLLING_BACK, /* the new layout failed: the old one is being made again */
	_REPARTITION_PHASE_MAX,
	_REPARTITION_PHASE_INVALID = -22,
};

const char *repartition_phase_to_string(enum repartition_phase p);
enum repartition_phase repartition_phase_from_string(const char *s);

struct repartition {
	char *device_id;
	struct offer target;
	bool by_policy;	      /* started by a policy change, not by an operator's request */
	bool has_previous;    /* the offer applied when it began: what a rollback makes again */
	struct offer previous;
	bool has_previous_layout; /* the operator's layout before it began (else: none) */
	struct offer previous_layout;
	enum repartition_phase phase;
	uint64_t started_usec, deadline_usec; /* CLOCK_REALTIME; deadline 0: none */
	char *error;	      /* rolling back: why the new layout failed */
};

void repartition_done(struct repartition *r);

struct state {
	struct ledger ledger;
	struct applied_offer *applied;
	size_t n_applied;
	struct applied_offer *layouts; /* operators' layouts (xpuctl repartition): over the policy */
	size_t n_layouts;
	struct device_cordon *cordons;
	size_t n_cordons;
	struct repartition *repartitions;
	size_t n_repartitions;
};

void state_done(struct state *s);
/* The applied offer of @device_id, or NULL. */
const struct offer *state_applied(const struct state *s, const char *device_id);
/* Sets (replacing) the applied offer of @device_id; a copy is taken. 0 or -ENOMEM. */
int state_set_applied(struct state *s, const char *device_id, const struct offer *o);
/* Drops the applied offer of @device_id, if any. */
void state_unset_applied(struct state *s, const char *device_id);

/* The operator's layout of @device_id, or NULL; set (a copy) or drop it. */
const struct offer *state_layout(const struct state *s, const char *device_id);
int state_set_layout(struct state *s, const char *device_id, const struct offer *o);
void state_unset_layout(struct state *s, const char *device_id);

/* The cordon of @device_id, or NULL. Cordoning a cordoned device replaces its reason (and keeps
 * since). 0 or -ENOMEM. */
const struct device_cordon *state_cordon(const struct state *s, const char *device_id);
int state_set_cordon(struct state *s, const char *device_id, const char *reason,
		     uint64_t since_usec);
/* Returns true when there was one. */
bool state_unset_cordon(struct state *s, const char *device_id);

/* The repartition of @device_id in progress, or NULL. */
struct repartition *state_repartition(const struct state *s, const char *device_id);
/* Adds @r (its contents move in; one per device: -EBUSY when there is one). 0, -EBUSY, -ENOMEM. */
int state_add_repartition(struct state *s, struct repartition *r);
void state_remove_repartition(struct state *s, const char *device_id);

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
