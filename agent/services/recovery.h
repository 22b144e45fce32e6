/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Resetting faulty devices when they are idle ("reset-when-idle:" in the configuration).
 *
 * A device is reset by xpud when all of these hold:
 *   - its fault asks for a reset: the backend says so with the health action reset-gpu (an XID
 *     or double-bit ECC error whose action is reset-gpu, a PCI function that stopped answering
 *     on the bus or had fatal AER errors, xpu_pci's failed liveness probe); faults of unknown
 *     remedy (no driver bound, a missing device node, NVML not answering) never qualify;
 *   - the health state machine holds it unhealthy: an event that acts at once, or probes that
 *     kept failing (health-suspect-after of them), or a rescan that found it broken;
 *   - reset-when-idle names its kind;
 *   - nothing is allocated on it (the ledger); else it waits for the last release;
 *   - it was not tried already for this fault: after an attempt the next comes only once the
 *     device has been healthy again, or after a back-off that doubles with every attempt
 *     (RECOVERY_BACKOFF_USEC, 2x, 4x, ... at most RECOVERY_BACKOFF_MAX_USEC). A backend that
 *     cannot reset the device is not asked again until the device has been healthy.
 * The reset runs off the loop (services/offloop.c: one at a time, on a copy of the device), through
 * the device's backend (registry_reset()), bounded in time.
 * Success feeds HEALTH_SIGNAL_RESET (the device goes on probation) and asks for a rescan; failure
 * is logged with the backend's reason and the device stays unhealthy.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backends/registry.h"
#include "core/config.h"
#include "core/health.h"
#include "core/inventory.h"
#include "services/allocations.h"

#define RECOVERY_BACKOFF_USEC (10 * 60 * 1000000ULL)
#define RECOVERY_BACKOFF_MAX_USEC (24 * 60 * 60 * 1000000ULL)

enum recovery_verdict {
	RECOVERY_NOTHING,   /* no fault a reset cures, or reset-when-idle does not cover it */
	RECOVERY_RESET,	    /* reset it now */
	RECOVERY_WAIT_IDLE, /* reset it once its slices are released */
	RECOVERY_BACKOFF,   /* tried already: wait for the back-off, or for it to be healthy */
	RECOVERY_GIVEN_UP,  /* its backend cannot reset it: not until it has been healthy */
	_RECOVERY_VERDICT_MAX,
};

/* What the decision about one device is made from. */
struct recovery_facts {
	enum health_phase phase;
	int action;		    /* what its latest fault asked for (enum health_action) */
	bool covered;		    /* reset-when-idle names its kind */
	bool busy;		    /* a slice of it is allocated */
	unsigned attempts;	    /* resets tried since it was last healthy */
	uint64_t last_attempt_usec; /* CLOCK_MONOTONIC */
	bool unsupported;	    /* the last attempt found that its backend cannot reset it */
};

const char *recovery_verdict_to_string(enum recovery_verdict v);

/* The wait after the @attempts-th attempt (>= 1): the base doubled each time, capped. Pure. */
uint64_t recovery_backoff_usec(unsigned attempts);

/* What to do about one device at @now_usec (CLOCK_MONOTONIC). Pure: no I/O, no logging. */
enum recovery_verdict recovery_decide(const struct recovery_facts *f, uint64_t now_usec);

struct recovery_context {
	struct inventory *inventory;	 /* borrowed */
	struct registry *registry;	 /* borrowed */
	struct allocations *allocations; /* borrowed; NULL: nothing is ever allocated */
	const struct config *config;	 /* borrowed; read at every decision (reloads count) */
	void (*rescan)(void *userdata);	 /* asks the daemon for a rescan (coalesced) */
	void *userdata;
};

struct recovery;

/*
 * Sets up the resets in @e's loop: a decision pass after every loop iteration in which a device's
 * health evidence or the inventory (a release) changed. 0 or -errno (not logged).
 */
int recovery_new(sd_event *e, const struct recovery_context *ctx, struct recovery **ret);
struct recovery *recovery_free(struct recovery *r);

/*
 * What a probe, a backend's event or a rescan said about device @id: @h with the fault's action.
 * Call it with every piece of health evidence, before or after feeding it to the inventory: the
 * decision pass runs after the loop iteration. Logs only when out of memory (the evidence is then
 * lost, and the next probe brings it again).
 */
void recovery_note(struct recovery *r, const char *id, const struct xpu_health *h);
/* recovery_note() for each device of a rescan's list. */
void recovery_note_devices(struct recovery *r, const struct device_list *l);
