/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The allocation service: grants and releases slices, persists every change before it is
 * acknowledged (state.c), and releases what an owner left behind: a process that exited
 * (pidfd), a cgroup or systemd unit that emptied (inotify on cgroup.events). Lives in the
 * daemon's event loop; the API calls it.
 */
#pragma once

#include <systemd/sd-event.h>

#include "core/alloc.h"
#include "core/inventory.h"
#include "core/state.h"
#include "shared/host.h"

struct allocations;

/*
 * Loads the state from @state_dir (a corrupt file is set aside and logged; see state_load()),
 * releases allocations whose owner is gone, watches the others' owners, and makes @inv plan
 * from @policy (borrowed) and this state from then on. Call it before the first inventory.
 * 0 or -errno (logged).
 */
int allocations_new(sd_event *e, const struct xpu_host *host, const char *state_dir,
		    struct inventory *inv, const struct policy *policy,
		    struct allocations **ret);
struct allocations *allocations_free(struct allocations *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct allocations *, allocations_free);

/* The state the inventory plans from (its ledger and applied offers). */
struct state *allocations_state(struct allocations *s);
const struct ledger *allocations_ledger(const struct allocations *s);

/*
 * Grants @req to @owner: checks the owner is alive, picks the slices (alloc_choose()), records
 * and saves the allocation. On success *ret points to the ledger's record (valid until the next
 * change). Errors as alloc_choose(), plus -ESRCH (the owner is gone), -EINVAL (a malformed
 * owner) and -EIO (the state could not be saved: nothing was granted); each with a reason in
 * *ret_error.
 */
int allocations_grant(struct allocations *s, const struct alloc_request *req,
		      const struct alloc_owner *owner, const struct allocation **ret,
		      char **ret_error);

/*
 * An observer of grants and releases (the enforcement service). @granted runs after a grant is
 * saved, with what its caller passed as @args (allocations_grant_args(); NULL otherwise), its
 * owner alive and watched: a negative errno from it undoes the grant (released and saved) and
 * is the grant's answer, with its *ret_error. @released runs after a release is saved (by
 * request, or because the owner is gone), with the allocation as it was. Either may be NULL.
 */
struct allocations_observer {
	int (*granted)(const struct allocation *a, const void *args, char **ret_error,
		       void *userdata);
	void (*released)(const struct allocation *a, void *userdata);
};

/*
 * Sets the one observer (NULL: none), replacing the one before (its @destroy runs on its
 * userdata, as it does when @s is freed). @ops is borrowed and must outlive @s.
 */
void allocations_set_observer(struct allocations *s, const struct allocations_observer *ops,
			      void *userdata, void (*destroy)(void *userdata));

/* allocations_grant() with @args for the observer's granted (borrowed, for the call only). */
int allocations_grant_args(struct allocations *s, const struct alloc_request *req,
			   const struct alloc_owner *owner, const void *args,
			   const struct allocation **ret, char **ret_error);

/*
 * Resources another owner manages (the device plugin serves them to kubelet): @reserved says
 * whether @resource is one. allocations_grant() refuses them with -EBUSY, so a slice is never
 * handed out both locally and by kubelet; allocations_grant_reserved() is the manager's way in.
 */
typedef bool (*allocations_reserved_t)(const char *resource, void *userdata);
void allocations_set_reserved(struct allocations *s, allocations_reserved_t reserved,
			      void *userdata);
/* allocations_grant() for the manager of reserved resources (kubelet's device plugin). */
int allocations_grant_reserved(struct allocations *s, const struct alloc_request *req,
			       const struct alloc_owner *owner, const struct allocation **ret,
			       char **ret_error);

/*
 * Changes who holds allocation @id (kubelet's checkpoint names the pod of a grant made through
 * the device plugin) and saves. Owners of kinds that are watched (pid, cgroup, unit) are not
 * set here. 0, -ENOENT, -EIO (not saved: unchanged), -ENOMEM.
 */
int allocations_set_owner(struct allocations *s, const char *id, const struct alloc_owner *owner);

/* Releases @id and saves. 0, -ENOENT (no such allocation), -EIO (not saved: kept). */
int allocations_release(struct allocations *s, const char *id, char **ret_error);

/*
 * The cgroup directory of owner @o, below <root>/sys/fs/cgroup: a cgroup owner's own, a unit
 * where systemd puts units (directly below system.slice, machine.slice or user.slice). -ESRCH:
 * another kind of owner, or the unit or cgroup does not exist (it is not running); -ENOMEM.
 */
int allocations_owner_cgroup(const struct allocations *s, const struct alloc_owner *o,
			     char **ret_dir);

/*
 * After the inventory's state changed outside a grant or release (a rescan or reload applied
 * a pending offer): saves it. Logs a failure. 0 or -errno.
 */
int allocations_save(struct allocations *s);
