// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "services/allocations.h"
#include "shared/clock.h"
#include "shared/fault.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

/* What keeps one allocation's owner in view. */
struct owner_watch {
	struct allocations *service;
	char *alloc_id;
	sd_event_source *source;
	int pidfd; /* OWNER_PID */
	char *events_path; /* OWNER_CGROUP/UNIT: the cgroup's cgroup.events */
};

struct allocations {
	sd_event *event;
	const struct xpu_host *host;
	char *state_dir;
	struct inventory *inventory;
	struct state state;
	struct owner_watch **watches;
	size_t n_watches;
	allocations_reserved_t reserved; /* resources the local API may not grant */
	void *reserved_userdata;
	/* releases of gone owners that could not be saved: retried after the next successful
	 * save, and on a timer that backs off while saving keeps failing */
	sd_event_source *retry_defer, *retry_timer;
	uint64_t retry_usec; /* the timer's next interval */
	bool retrying;
	const struct allocations_observer *observer;
	void *observer_userdata;
	void (*observer_destroy)(void *userdata);
};

#define RETRY_FIRST_USEC (1 * 1000000ULL)
#define RETRY_MAX_USEC (60 * 1000000ULL)

struct state *allocations_state(struct allocations *s)
{
	return &s->state;
}

const struct ledger *allocations_ledger(const struct allocations *s)
{
	return &s->state.ledger;
}

/* ---- owners ----------------------------------------------------------------------------- */

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot. */
static int pid_start_time(pid_t pid, uint64_t *ret)
{
	_cleanup_free_ char *stat = NULL;
	char path[64];
	const char *p;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_attr_at(AT_FDCWD, path, 4096, &stat);
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	/* the command name may hold spaces and parentheses: fields start after the last ')' */
	p = strrchr(stat, ')');
	if (!p)
		return -EBADMSG;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EBADMSG;
	}
	return sscanf(p + 1, "%" SCNu64, ret) == 1 ? 0 : -EBADMSG;
}

static int parse_pid(const char *s, pid_t *ret)
{
	int v;

	if (safe_atoi(s, &v) < 0 || v <= 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A cgroup v2 path relative to the cgroup root: absolute, no "." or ".." components. */
static bool cgroup_path_valid(const char *p)
{
	if (!p || p[0] != '/' || strlen(p) > 4096 || strstr(p, "//"))
		return false;
	for (const char *c = p; (c = strchr(c, '/')); c++)
		if (streq(c, "/.") || streq(c, "/..") || !strncmp(c, "/./", 3) ||
		    !strncmp(c, "/../", 4))
			return false;
	return true;
}

/* A unit name as systemd spells them: NAME.TYPE without a slash. */
static bool unit_name_valid(const char *u)
{
	const char *dot = u ? strrchr(u, '.') : NULL;

	return dot && dot != u && dot[1] && !strchr(u, '/') && strlen(u) < 256 &&
	       string_is_printable(u);
}

int allocations_owner_cgroup(const struct allocations *s, const struct alloc_owner *o,
			     char **ret_dir)
{
	static const char *const slices[] = { "system.slice", "machine.slice", "user.slice" };
	const char *root = streq(s->host->root, "/") ? "" : s->host->root;
	_cleanup_free_ char *p = NULL;

	if (o->kind == OWNER_CGROUP) {
		if (asprintf(&p, "%s/sys/fs/cgroup%s", root, o->value) < 0)
			return -ENOMEM;
		if (access(p, F_OK) < 0)
			return -ESRCH;
		*ret_dir = TAKE_PTR(p);
		return 0;
	}
	if (o->kind != OWNER_UNIT)
		return -ESRCH;
	for (size_t i = 0; i < ELEMENTSOF(slices); i++) {
		p = mfree(p);
		if (asprintf(&p, "%s/sys/fs/cgroup/%s/%s", root, slices[i], o->value) < 0)
			return -ENOMEM;
		if (access(p, F_OK) == 0) {
			*ret_dir = TAKE_PTR(p);
			return 0;
		}
	}
	return -ESRCH;
}

/* The cgroup.events file of an owner's cgroup. -ESRCH: it is not running. */
static int owner_events_path(const struct allocations *s, const struct alloc_owner *o,
			     char **ret)
{
	_cleanup_free_ char *dir = NULL, *events = NULL;
	int r = allocations_owner_cgroup(s, o, &dir);

	if (r < 0)
		return r;
	if (asprintf(&events, "%s/cgroup.events", dir) < 0)
		return -ENOMEM;
	if (access(events, F_OK) < 0)
		return -ESRCH;
	*ret = TAKE_PTR(events);
	return 0;
}

/* Whether a cgroup.events file says the cgroup has no process left. */
static bool cgroup_unpopulated(const char *events_path)
{
	_cleanup_free_ char *text = NULL;
	const char *p;

	if (read_attr_at(AT_FDCWD, events_path, 4096, &text) < 0)
		return true; /* gone */
	p = strstr(text, "populated ");
	return p && p[strlen("populated ")] == '0';
}

/*
 * Checks that @o names a live owner and fills what identifies it (a PID's start time).
 * -EINVAL: malformed; -ESRCH: not alive (with *ret_error set in both cases).
 */
static int owner_check(const struct allocations *s, struct alloc_owner *o, char **ret_error)
{
	_cleanup_free_ char *events = NULL;
	pid_t pid;
	int r;

	switch (o->kind) {
	case OWNER_NONE:
	case OWNER_POD:
		return 0;
	case OWNER_PID:
		if (parse_pid(o->value, &pid) < 0)
			goto malformed;
		r = pid_start_time(pid, &o->pid_start);
		if (r == -ESRCH)
			goto gone;
		return r;
	case OWNER_CGROUP:
		if (!cgroup_path_valid(o->value))
			goto malformed;
		break;
	case OWNER_UNIT:
		if (!unit_name_valid(o->value))
			goto malformed;
		break;
	default:
		goto malformed;
	}
	r = owner_events_path(s, o, &events);
	if (r == -ESRCH || (r >= 0 && cgroup_unpopulated(events)))
		goto gone;
	return r;
malformed:
	if (asprintf(ret_error, "owner %s '%s' is malformed", owner_kind_to_string(o->kind) ?: "?",
		     o->value ?: "") < 0)
		*ret_error = NULL;
	return -EINVAL;
gone:
	if (asprintf(ret_error, "owner %s %s is not running", owner_kind_to_string(o->kind),
		     o->value) < 0)
		*ret_error = NULL;
	return -ESRCH;
}

static void watch_free(struct owner_watch *w)
{
	if (!w)
		return;
	sd_event_source_disable_unref(w->source);
	safe_close(w->pidfd);
	free(w->alloc_id);
	free(w->events_path);
	free(w);
}

static void unwatch(struct allocations *s, const char *alloc_id)
{
	for (size_t i = 0; i < s->n_watches; i++)
		if (streq(s->watches[i]->alloc_id, alloc_id)) {
			watch_free(s->watches[i]);
			s->watches[i] = s->watches[--s->n_watches];
			return;
		}
}

static bool any_release_pending(const struct allocations *s)
{
	for (size_t i = 0; i < s->state.ledger.n; i++)
		if (s->state.ledger.items[i]->release_pending)
			return true;
	return false;
}

static void arm_retry_timer(struct allocations *s)
{
	int r;

	if (!s->retry_usec)
		s->retry_usec = RETRY_FIRST_USEC;
	r = sd_event_source_set_time_relative(s->retry_timer, s->retry_usec);
	if (r >= 0)
		r = sd_event_source_set_enabled(s->retry_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_warning_errno(r, "Failed to arm the retry of pending releases, they are retried "
				     "at the next save only: %m");
}

/* The owner of @id is gone but its release was not saved: keep trying. */
static void release_later(struct allocations *s, const char *id)
{
	struct allocation *a = ledger_find(&s->state.ledger, id);

	if (!a)
		return;
	if (!a->release_pending)
		log_warning("Allocation %s: its owner is gone but the release could not be saved; "
			    "it is retried.",
			    id);
	a->release_pending = true;
	if (sd_event_source_get_enabled(s->retry_timer, NULL) <= 0)
		arm_retry_timer(s);
}

/* Releases what is pending; stops at the first failure (saving fails for all alike). */
static void retry_releases(struct allocations *s)
{
	_cleanup_strv_free_ char **ids = NULL;
	int r;

	if (s->retrying)
		return;
	for (size_t i = 0; i < s->state.ledger.n; i++)
		if (s->state.ledger.items[i]->release_pending &&
		    strv_extend(&ids, s->state.ledger.items[i]->id) < 0)
			return (void)log_oom();
	s->retrying = true;
	STRV_FOREACH(id, ids) {
		r = allocations_release(s, *id, NULL);
		if (r == -EIO) {
			release_later(s, *id);
			break;
		}
		if (r >= 0)
			log_info("Allocation %s: the pending release is saved now.", *id);
	}
	s->retrying = false;
	if (!any_release_pending(s)) {
		s->retry_usec = 0;
		(void)sd_event_source_set_enabled(s->retry_timer, SD_EVENT_OFF);
	}
}

static int on_retry_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct allocations *s = userdata;

	s->retry_usec = MIN(s->retry_usec * 2, RETRY_MAX_USEC);
	retry_releases(s);
	if (any_release_pending(s) && sd_event_source_get_enabled(s->retry_timer, NULL) <= 0)
		arm_retry_timer(s);
	return 0;
}

static int on_retry_defer(sd_event_source *src, void *userdata)
{
	retry_releases(userdata);
	return 0;
}

static void owner_gone(struct owner_watch *w)
{
	struct allocations *s = w->service;
	_cleanup_free_ char *id = strdup(w->alloc_id), *err = NULL;
	struct allocation *a = ledger_find(&s->state.ledger, w->alloc_id);
	int r;

	if (!id || !a)
		return;
	log_info("Allocation %s: owner %s %s is gone, releasing %zu slice%s.", id,
		 owner_kind_to_string(a->owner.kind), a->owner.value, strv_length(a->slices),
		 strv_length(a->slices) == 1 ? "" : "s");
	r = allocations_release(s, id, &err); /* frees w */
	if (r == -EIO)
		release_later(s, id);
	else if (r < 0)
		log_warning_errno(r, "Failed to release allocation %s: %s", id, err ?: "?");
}

static int on_pidfd(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	owner_gone(userdata);
	return 0;
}

static int on_cgroup_events(sd_event_source *src, const struct inotify_event *ev, void *userdata)
{
	struct owner_watch *w = userdata;

	if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF)) || cgroup_unpopulated(w->events_path))
		owner_gone(w);
	return 0;
}

/* Starts watching @a's owner. 0, -ESRCH (already gone: the caller releases), -errno. */
static int watch_owner(struct allocations *s, const struct allocation *a)
{
	struct owner_watch *w, **m;
	uint64_t start;
	pid_t pid;
	int r;

	if (a->owner.kind != OWNER_PID && a->owner.kind != OWNER_CGROUP &&
	    a->owner.kind != OWNER_UNIT)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->service = s;
	w->pidfd = -EBADF;
	w->alloc_id = strdup(a->id);
	if (!w->alloc_id) {
		r = -ENOMEM;
		goto fail;
	}
	if (a->owner.kind == OWNER_PID) {
		r = parse_pid(a->owner.value, &pid);
		if (r < 0)
			goto fail;
		w->pidfd = pidfd_open(pid, 0);
		if (w->pidfd < 0) {
			r = errno == ESRCH ? -ESRCH : -errno;
			goto fail;
		}
		/* The PID may have been reused since the owner was recorded (a restart). */
		r = pid_start_time(pid, &start);
		if (r >= 0 && a->owner.pid_start && start != a->owner.pid_start)
			r = -ESRCH;
		if (r < 0)
			goto fail;
		r = sd_event_add_io(s->event, &w->source, w->pidfd, EPOLLIN, on_pidfd, w);
	} else {
		r = owner_events_path(s, &a->owner, &w->events_path);
		if (r < 0)
			goto fail;
		r = sd_event_add_inotify(s->event, &w->source, w->events_path,
					 IN_MODIFY | IN_DELETE_SELF, on_cgroup_events, w);
		/* the cgroup may have emptied between the check and the watch */
		if (r >= 0 && cgroup_unpopulated(w->events_path))
			r = -ESRCH;
	}
	if (r < 0)
		goto fail;
	m = realloc(s->watches, (s->n_watches + 1) * sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto fail;
	}
	s->watches = m;
	s->watches[s->n_watches++] = w;
	return 0;
fail:
	watch_free(w);
	return r;
}

/* ---- grant and release ------------------------------------------------------------------ */

static int save(struct allocations *s)
{
	int r = state_save(s->state_dir, &s->state);

	if (r < 0)
		log_error_errno(r, "Failed to save the state to %s/%s: %m", s->state_dir,
				STATE_FILE);
	else if (!s->retrying && s->retry_defer && any_release_pending(s))
		/* saving works again: the pending releases follow, after this change is done */
		(void)sd_event_source_set_enabled(s->retry_defer, SD_EVENT_ONESHOT);
	return r;
}

int allocations_save(struct allocations *s)
{
	return save(s);
}

static int new_id(char **ret)
{
	uint64_t v;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		return -errno ?: -EIO;
	return asprintf(ret, "a-%016llx", (unsigned long long)v) < 0 ? -ENOMEM : 0;
}

void allocations_set_reserved(struct allocations *s, allocations_reserved_t reserved,
			      void *userdata)
{
	s->reserved = reserved;
	s->reserved_userdata = userdata;
}

/* The resource of @req that another owner manages, or NULL. */
static const char *reserved_resource(const struct allocations *s, const struct alloc_request *req)
{
	const struct slice_list *l = inventory_slices(s->inventory);

	if (!s->reserved)
		return NULL;
	if (req->resource)
		return s->reserved(req->resource, s->reserved_userdata) ? req->resource : NULL;
	STRV_FOREACH(id, req->slices)
		for (size_t i = 0; i < l->n; i++)
			if (streq(l->items[i]->id, *id) &&
			    s->reserved(l->items[i]->resource, s->reserved_userdata))
				return l->items[i]->resource;
	return NULL;
}

void allocations_set_observer(struct allocations *s, const struct allocations_observer *ops,
			      void *userdata, void (*destroy)(void *userdata))
{
	if (s->observer_destroy)
		s->observer_destroy(s->observer_userdata);
	s->observer = ops;
	s->observer_userdata = userdata;
	s->observer_destroy = destroy;
}

static int grant(struct allocations *s, const struct alloc_request *req,
		 const struct alloc_owner *owner, bool reserved_ok, const void *args,
		 const struct allocation **ret, char **ret_error);

int allocations_grant(struct allocations *s, const struct alloc_request *req,
		      const struct alloc_owner *owner, const struct allocation **ret,
		      char **ret_error)
{
	return grant(s, req, owner, false, NULL, ret, ret_error);
}

int allocations_grant_args(struct allocations *s, const struct alloc_request *req,
			   const struct alloc_owner *owner, const void *args,
			   const struct allocation **ret, char **ret_error)
{
	return grant(s, req, owner, false, args, ret, ret_error);
}

int allocations_grant_reserved(struct allocations *s, const struct alloc_request *req,
			       const struct alloc_owner *owner, const struct allocation **ret,
			       char **ret_error)
{
	return grant(s, req, owner, true, NULL, ret, ret_error);
}

static int grant(struct allocations *s, const struct alloc_request *req,
		 const struct alloc_owner *owner, bool reserved_ok, const void *args,
		 const struct allocation **ret, char **ret_error)
{
	const char *taken = reserved_ok ? NULL : reserved_resource(s, req);
	_cleanup_(allocation_freep) struct allocation *a = calloc(1, sizeof(*a));
	_cleanup_free_ char *id = NULL;
	struct allocation *rec;
	int r;

	if (!a)
		return -ENOMEM;
	if (taken) {
		if (asprintf(ret_error, "%s is served to kubelet by xpud's device plugin; request "
					"it in a pod's resources.limits instead",
			     taken) < 0)
			*ret_error = NULL;
		return -EBUSY;
	}
	a->owner.kind = owner->kind;
	if (owner->value && !(a->owner.value = strdup(owner->value)))
		return -ENOMEM;
	r = owner_check(s, &a->owner, ret_error);
	if (r < 0)
		return r;
	r = alloc_choose(inventory_devices(s->inventory), inventory_slices(s->inventory),
			 &s->state.ledger, req, &a->slices, ret_error);
	if (r < 0)
		return r;
	r = new_id(&a->id);
	if (r < 0)
		return r;
	if (req->resource)
		a->resource = strdup(req->resource);
	else {
		const struct slice_list *l = inventory_slices(s->inventory);

		for (size_t i = 0; i < l->n && !a->resource; i++)
			if (streq(l->items[i]->id, a->slices[0]))
				a->resource = strdup(l->items[i]->resource);
	}
	if (!a->resource)
		return -ENOMEM;
	a->created_usec = now_usec(CLOCK_REALTIME);

	id = strdup(a->id);
	if (!id)
		return -ENOMEM;
	rec = a;
	r = ledger_add(&s->state.ledger, TAKE_PTR(a));
	if (r < 0)
		return r;
	fault_point("grant-before-save");
	fault_context("grant");
	r = save(s);
	fault_context(NULL);
	if (r < 0) {
		(void)ledger_remove(&s->state.ledger, id);
		*ret_error = strdup("the state could not be saved; nothing was granted");
		return -EIO;
	}
	fault_point("grant-after-save");
	r = watch_owner(s, rec);
	if (r == -ESRCH) {
		/* exited right after the check: the grant stands until the release below */
		log_info("Allocation %s: owner %s %s exited already, releasing.", id,
			 owner_kind_to_string(rec->owner.kind), rec->owner.value);
	} else if (r < 0) {
		log_warning_errno(r, "Allocation %s: cannot watch owner %s %s, it is released only "
				     "explicitly: %m",
				  id, owner_kind_to_string(rec->owner.kind), rec->owner.value);
	}
	inventory_touch(s->inventory);
	if (rec->owner.kind == OWNER_NONE)
		log_info("Allocation %s: %zu %s slice%s, released only on request.", id,
			 strv_length(rec->slices), rec->resource,
			 strv_length(rec->slices) == 1 ? "" : "s");
	else
		log_info("Allocation %s: %zu %s slice%s to %s %s.", id, strv_length(rec->slices),
			 rec->resource, strv_length(rec->slices) == 1 ? "" : "s",
			 owner_kind_to_string(rec->owner.kind), rec->owner.value);
	*ret = rec;
	if (r == -ESRCH) {
		/* acknowledged as granted-and-released: the caller sees its owner was gone */
		(void)allocations_release(s, id, NULL);
		*ret = NULL;
		*ret_error = strdup("the owner exited while the allocation was made");
		return -ESRCH;
	}
	if (s->observer && s->observer->granted) {
		r = s->observer->granted(rec, args, ret_error, s->observer_userdata);
		if (r < 0) {
			log_info("Allocation %s: undone, %s.", id, *ret_error ?: "refused");
			*ret = NULL;
			if (allocations_release(s, id, NULL) == -EIO)
				release_later(s, id);
			return r;
		}
	}
	return 0;
}

int allocations_release(struct allocations *s, const char *id, char **ret_error)
{
	_cleanup_(allocation_freep) struct allocation *keep = NULL;
	_cleanup_free_ char *id_copy = strdup(id);
	struct allocation *a;
	int r;

	if (!id_copy)
		return -ENOMEM;
	a = ledger_find(&s->state.ledger, id_copy);
	if (!a) {
		if (ret_error && asprintf(ret_error, "no allocation '%s'", id_copy) < 0)
			*ret_error = NULL;
		return -ENOENT;
	}
	r = allocation_dup(a, &keep);
	if (r < 0)
		return r;
	unwatch(s, id_copy);
	(void)ledger_remove(&s->state.ledger, id_copy);
	/* The device may be idle now: an offer pending for it applies. */
	r = inventory_replan(s->inventory);
	if (r < 0)
		log_warning_errno(r, "Failed to plan slices again after a release: %m");
	fault_point("release-before-save");
	fault_context("release");
	r = save(s);
	fault_context(NULL);
	if (r < 0) {
		/* what is on disk still holds it: so does memory */
		if (ledger_add(&s->state.ledger, TAKE_PTR(keep)) >= 0)
			(void)watch_owner(s, ledger_find(&s->state.ledger, id_copy));
		(void)inventory_replan(s->inventory);
		if (ret_error)
			*ret_error = strdup("the state could not be saved; the allocation is kept");
		return -EIO;
	}
	fault_point("release-after-save");
	if (s->observer && s->observer->released)
		s->observer->released(keep, s->observer_userdata);
	inventory_touch(s->inventory);
	log_info("Allocation %s released.", id_copy);
	return 0;
}

/* ---- start ------------------------------------------------------------------------------ */

int allocations_new(sd_event *e, const struct xpu_host *host, const char *state_dir,
		    struct inventory *inv, const struct policy *policy, struct allocations **ret)
{
	_cleanup_(allocations_freep) struct allocations *s = calloc(1, sizeof(*s));
	_cleanup_free_ char *warning = NULL;
	_cleanup_strv_free_ char **gone = NULL;
	_cleanup_(ledger_clear) struct ledger kept = {}; /* the gone owners' allocations */
	bool corrupt;
	int r;

	if (!s)
		return log_oom();
	s->event = sd_event_ref(e);
	s->host = host;
	s->inventory = inv;
	s->state_dir = strdup(state_dir);
	if (!s->state_dir)
		return log_oom();
	r = state_load(state_dir, &s->state, &warning);
	if (r < 0)
		return log_error_errno(r, "Failed to load the state from %s: %m", state_dir);
	corrupt = r > 0;
	if (r > 0)
		log_warning("State %s/%s was damaged and is kept as %s.corrupt: %s", state_dir,
			    STATE_FILE, STATE_FILE, warning ?: "?");
	if (s->state.ledger.n)
		log_info("%zu allocation%s restored from %s.", s->state.ledger.n,
			 s->state.ledger.n == 1 ? "" : "s", state_dir);

	/* Owners that went away while xpud was not running. */
	for (size_t i = 0; i < s->state.ledger.n; i++) {
		const struct allocation *a = s->state.ledger.items[i];

		r = watch_owner(s, a);
		if (r == -ESRCH) {
			log_info("Allocation %s: owner %s %s is gone, releasing.", a->id,
				 owner_kind_to_string(a->owner.kind), a->owner.value);
			if (strv_extend(&gone, a->id) < 0)
				return log_oom();
		} else if (r < 0) {
			log_warning_errno(r, "Allocation %s: cannot watch owner %s %s: %m", a->id,
					  owner_kind_to_string(a->owner.kind), a->owner.value);
		}
	}
	STRV_FOREACH(id, gone) {
		struct allocation *copy = NULL;

		/* ledger_add() frees the copy when it fails */
		if (allocation_dup(ledger_find(&s->state.ledger, *id), &copy) < 0 ||
		    ledger_add(&kept, copy) < 0)
			return log_oom();
		(void)ledger_remove(&s->state.ledger, *id);
	}

	r = sd_event_add_defer(e, &s->retry_defer, on_retry_defer, s);
	if (r >= 0)
		r = sd_event_add_time_relative(e, &s->retry_timer, CLOCK_MONOTONIC, RETRY_FIRST_USEC,
					       0, on_retry_timer, s);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the retry of releases: %m");
	(void)sd_event_source_set_enabled(s->retry_defer, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(s->retry_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(s->retry_defer, "release-retry");
	(void)sd_event_source_set_description(s->retry_timer, "release-retry-timer");

	inventory_set_planner(inv, policy, &s->state);
	if ((corrupt || gone) && save(s) < 0) {
		if (corrupt)
			return -EIO;
		/* a full disk must not keep xpud from starting: the releases wait for space */
		for (size_t i = 0; i < kept.n; i++) {
			struct allocation *a = TAKE_PTR(kept.items[i]);

			a->release_pending = true;
			if (ledger_add(&s->state.ledger, a) < 0)
				return log_oom();
			log_warning("Allocation %s: its owner is gone but the release could not be "
				    "saved; it is retried.",
				    a->id);
		}
		kept.n = 0;
		arm_retry_timer(s);
	}
	*ret = TAKE_PTR(s);
	return 0;
}

struct allocations *allocations_free(struct allocations *s)
{
	if (!s)
		return NULL;
	allocations_set_observer(s, NULL, NULL, NULL);
	for (size_t i = 0; i < s->n_watches; i++)
		watch_free(s->watches[i]);
	free(s->watches);
	sd_event_source_disable_unref(s->retry_defer);
	sd_event_source_disable_unref(s->retry_timer);
	state_done(&s->state);
	free(s->state_dir);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}

int allocations_set_owner(struct allocations *s, const char *id, const struct alloc_owner *owner)
{
	struct allocation *a = ledger_find(&s->state.ledger, id);
	struct alloc_owner old;
	char *value = NULL;
	int r;

	if (!a)
		return -ENOENT;
	if (a->owner.kind == owner->kind && streq_ptr(a->owner.value, owner->value))
		return 0;
	if (owner->value && !(value = strdup(owner->value)))
		return -ENOMEM;
	old = a->owner;
	a->owner = (struct alloc_owner){ .kind = owner->kind, .value = value,
					 .pid_start = owner->pid_start };
	r = save(s);
	if (r < 0) {
		a->owner = old;
		free(value);
		return -EIO;
	}
	free(old.value);
	inventory_touch(s->inventory);
	return 0;
}
