// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Transient scopes over sd-bus. One connection, made at the first grant and again after it
 * broke; a call subscribes to JobRemoved only while it waits for its job, so that nothing queues
 * up on the connection between grants.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "services/enforce-systemd.h"
#include "shared/fileio.h"
#include "shared/strv.h"

#define SYSTEMD_SERVICE "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"

struct enforce_systemd {
	const struct xpu_host *host;
	char *address;	   /* a bus daemon's address, or NULL */
	char *private_bus; /* systemd's private socket below the host root */
	sd_bus *bus;
};

/* What the JobRemoved signals of one call said about its job. */
struct job_wait {
	const char *path; /* the job, once the call answered */
	char *seen_paths[16];
	char *seen_results[16];
	size_t n_seen;
};

bool enforce_systemd_booted(const struct xpu_host *host)
{
	_cleanup_free_ char *path = NULL;
	struct stat st;

	if (asprintf(&path, "%s/run/systemd/system", streq(host->root, "/") ? "" : host->root) < 0)
		return false;
	return lstat(path, &st) >= 0 && S_ISDIR(st.st_mode);
}

int enforce_systemd_new(const struct xpu_host *host, const char *address,
			struct enforce_systemd **ret)
{
	_cleanup_(enforce_systemd_freep) struct enforce_systemd *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->host = host;
	if (address && !(s->address = strdup(address)))
		return -ENOMEM;
	if (asprintf(&s->private_bus, "unix:path=%s/run/systemd/private",
		     streq(host->root, "/") ? "" : host->root) < 0) {
		s->private_bus = NULL;
		return -ENOMEM;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

struct enforce_systemd *enforce_systemd_free(struct enforce_systemd *s)
{
	if (!s)
		return NULL;
	sd_bus_flush_close_unref(s->bus);
	free(s->address);
	free(s->private_bus);
	free(s);
	return NULL;
}

const char *enforce_systemd_address(const struct enforce_systemd *s)
{
	if (s->address)
		return s->address;
	return geteuid() == 0 ? s->private_bus : "the system bus";
}

static int bus_open(struct enforce_systemd *s)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	int r;

	if (s->bus && sd_bus_is_open(s->bus) > 0)
		return 0;
	s->bus = sd_bus_flush_close_unref(s->bus);
	if (!s->address && geteuid() != 0) {
		r = sd_bus_open_system(&bus);
		if (r < 0)
			return r;
	} else {
		r = sd_bus_new(&bus);
		if (r < 0)
			return r;
		r = sd_bus_set_address(bus, s->address ?: s->private_bus);
		if (r >= 0)
			/* a bus daemon wants Hello; systemd's own socket is a direct connection */
			r = sd_bus_set_bus_client(bus, !!s->address);
		if (r >= 0)
			r = sd_bus_start(bus);
		if (r < 0)
			return r;
	}
	s->bus = TAKE_PTR(bus);
	return 0;
}

/* ---- the message ---------------------------------------------------------------------------- */

static int append_value(sd_bus_message *m, const struct unit_prop *u)
{
	int r;

	switch (u->kind) {
	case UNIT_PROP_STRING:
		return sd_bus_message_append(m, "s", u->s);
	case UNIT_PROP_U64:
		return sd_bus_message_append(m, "t", u->t);
	case UNIT_PROP_STRV:
		return sd_bus_message_append_strv(m, u->strv);
	case UNIT_PROP_PAIRS:
		r = sd_bus_message_open_container(m, 'a', "(ss)");
		for (size_t i = 0; r >= 0 && u->strv && u->strv[i] && u->strv[i + 1]; i += 2)
			r = sd_bus_message_append(m, "(ss)", u->strv[i], u->strv[i + 1]);
		return r < 0 ? r : sd_bus_message_close_container(m);
	case UNIT_PROP_BYTES:
		return sd_bus_message_append_array(m, 'y', u->bytes, u->n_bytes);
	case UNIT_PROP_PIDS:
		return sd_bus_message_append(m, "au", 1, u->pid);
	}
	return -EINVAL;
}

int unit_props_append(sd_bus_message *m, const struct unit_props *p)
{
	int r = sd_bus_message_open_container(m, 'a', "(sv)");

	for (size_t i = 0; r >= 0 && i < p->n; i++) {
		const struct unit_prop *u = &p->items[i];
		const char *sig = unit_prop_signature(u->kind);

		if (!sig)
			return -EINVAL;
		r = sd_bus_message_open_container(m, 'r', "sv");
		if (r >= 0)
			r = sd_bus_message_append(m, "s", u->name);
		if (r >= 0)
			r = sd_bus_message_open_container(m, 'v', sig);
		if (r >= 0)
			r = append_value(m, u);
		if (r >= 0)
			r = sd_bus_message_close_container(m);
		if (r >= 0)
			r = sd_bus_message_close_container(m);
	}
	return r < 0 ? r : sd_bus_message_close_container(m);
}

/* ---- the call ----------------------------------------------------------------------------- */

static int error_to(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int error_to(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(ret_error, fmt, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return r;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct job_wait *w = userdata;
	const char *path, *unit, *result;
	uint32_t id;

	(void)ret_error;
	if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0 ||
	    w->n_seen >= ELEMENTSOF(w->seen_paths))
		return 0;
	w->seen_paths[w->n_seen] = strdup(path);
	w->seen_results[w->n_seen] = strdup(result);
	if (w->seen_paths[w->n_seen] && w->seen_results[w->n_seen])
		w->n_seen++;
	else {
		w->seen_paths[w->n_seen] = mfree(w->seen_paths[w->n_seen]);
		w->seen_results[w->n_seen] = mfree(w->seen_results[w->n_seen]);
	}
	return 0;
}

static void job_wait_done(struct job_wait *w)
{
	for (size_t i = 0; i < w->n_seen; i++) {
		free(w->seen_paths[i]);
		free(w->seen_results[i]);
	}
	w->n_seen = 0;
}

static const char *job_result(const struct job_wait *w)
{
	for (size_t i = 0; w->path && i < w->n_seen; i++)
		if (streq(w->seen_paths[i], w->path))
			return w->seen_results[i];
	return NULL;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* Until the job's JobRemoved came, or the deadline: its result. */
static int wait_job(sd_bus *bus, struct job_wait *w, uint64_t deadline, const char **ret)
{
	int r;

	for (;;) {
		uint64_t now;

		*ret = job_result(w);
		if (*ret)
			return 0;
		r = sd_bus_process(bus, NULL);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		now = now_usec();
		if (now >= deadline)
			return -ETIMEDOUT;
		r = sd_bus_wait(bus, deadline - now);
		if (r < 0)
			return r;
	}
}

/* Whether process @pid is gone or a zombie (the real /proc: owners are this host's processes). */
static bool process_gone(uint32_t pid)
{
	_cleanup_free_ char *text = NULL;
	char path[64];
	const char *paren;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	if (read_attr_at(AT_FDCWD, path, 4096, &text) < 0)
		return true;
	paren = strrchr(text, ')');
	return !paren || paren[1] != ' ' || paren[2] == 'Z' || paren[2] == 'X';
}

static uint32_t props_pid(const struct unit_props *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].kind == UNIT_PROP_PIDS)
			return p->items[i].pid;
	return 0;
}

/* Best effort: a unit whose start did not finish, stopped and forgotten. */
static void unit_undo(sd_bus *bus, const char *unit)
{
	(void)sd_bus_call_method(bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "StopUnit",
				 NULL, NULL, "ss", unit, "replace");
	(void)sd_bus_call_method(bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER,
				 "ResetFailedUnit", NULL, NULL, "s", unit);
}

/* A refusal of systemd's, as -errno with the reason for the caller. */
static int call_error(const struct enforce_systemd *s, const struct unit_props *p,
		      const sd_bus_error *e, int r, char **ret_error)
{
	uint32_t pid = props_pid(p);

	if (sd_bus_error_has_name(e, "org.freedesktop.systemd1.UnitExists"))
		return error_to(ret_error, -EBUSY,
				"systemd already has a unit %s (left from an earlier grant?): %s",
				p->unit, e->message ?: "unit exists");
	/* whatever systemd said about a process that is gone: the owner exited */
	if (pid && process_gone(pid))
		return error_to(ret_error, -ESRCH,
				"owner process %u exited before systemd could move it into %s", pid,
				p->unit);
	if (sd_bus_error_has_names(e, "org.freedesktop.DBus.Error.ServiceUnknown",
				   "org.freedesktop.DBus.Error.NameHasNoOwner",
				   "org.freedesktop.DBus.Error.NoReply",
				   "org.freedesktop.DBus.Error.Disconnected"))
		return error_to(ret_error, -ECONNREFUSED,
				"cannot reach systemd over D-Bus (%s): %s",
				enforce_systemd_address(s), e->message ?: e->name);
	if (sd_bus_error_has_names(e, "org.freedesktop.DBus.Error.InvalidArgs",
				   "org.freedesktop.DBus.Error.PropertyReadOnly",
				   "org.freedesktop.DBus.Error.UnknownProperty",
				   "org.freedesktop.DBus.Error.NotSupported"))
		return error_to(ret_error, -EOPNOTSUPP, "systemd refused unit %s: %s", p->unit,
				e->message ?: e->name);
	if (sd_bus_error_is_set(e))
		return error_to(ret_error, -EIO, "systemd failed the call for unit %s: %s (%s)",
				p->unit, e->message ?: "", e->name);
	return error_to(ret_error, r == -ETIMEDOUT ? r : -ECONNREFUSED,
			"cannot reach systemd over D-Bus (%s): %s", enforce_systemd_address(s),
			strerror(-r));
}

int enforce_systemd_start(struct enforce_systemd *s, const struct unit_props *p, char **ret_error)
{
	_cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
	_cleanup_(job_wait_done) struct job_wait w = {};
	uint64_t deadline = now_usec() + ENFORCE_SYSTEMD_TIMEOUT_USEC;
	const char *result = NULL;
	uint32_t pid = props_pid(p);
	int r;

	r = bus_open(s);
	if (r < 0)
		return call_error(s, p, &e, r, ret_error);
	/* before the call: the job may end before its answer is read */
	r = sd_bus_match_signal(s->bus, &slot, NULL, SYSTEMD_PATH, SYSTEMD_MANAGER, "JobRemoved",
				on_job_removed, &w);
	if (r < 0) {
		s->bus = sd_bus_flush_close_unref(s->bus);
		return call_error(s, p, &e, r, ret_error);
	}
	r = sd_bus_message_new_method_call(s->bus, &m, SYSTEMD_SERVICE, SYSTEMD_PATH,
					   SYSTEMD_MANAGER, "StartTransientUnit");
	if (r >= 0)
		r = sd_bus_message_append(m, "ss", p->unit, "fail");
	if (r >= 0)
		r = unit_props_append(m, p);
	if (r >= 0)
		r = sd_bus_message_append(m, "a(sa(sv))", 0);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return error_to(ret_error, r, "cannot make the call for unit %s: %s", p->unit,
				strerror(-r));
	r = sd_bus_call(s->bus, m, ENFORCE_SYSTEMD_TIMEOUT_USEC, &e, &reply);
	if (r < 0)
		return call_error(s, p, &e, r, ret_error);
	r = sd_bus_message_read(reply, "o", &w.path);
	if (r < 0)
		return error_to(ret_error, -EIO, "systemd's answer for unit %s is malformed",
				p->unit);
	r = wait_job(s->bus, &w, deadline, &result);
	if (r >= 0 && streq(result, "done"))
		return 0;
	unit_undo(s->bus, p->unit);
	if (r == -ETIMEDOUT)
		return error_to(ret_error, r, "systemd did not start unit %s within %llu s",
				p->unit,
				(unsigned long long)(ENFORCE_SYSTEMD_TIMEOUT_USEC / 1000000));
	if (r < 0)
		return call_error(s, p, &e, r, ret_error);
	if (pid && process_gone(pid))
		return error_to(ret_error, -ESRCH,
				"owner process %u exited before systemd could move it into %s", pid,
				p->unit);
	return error_to(ret_error, -EIO, "systemd's job for unit %s ended '%s'", p->unit, result);
}

int enforce_systemd_set(struct enforce_systemd *s, const struct unit_props *p, char **ret_error)
{
	_cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	r = bus_open(s);
	if (r < 0)
		return call_error(s, p, &e, r, ret_error);
	r = sd_bus_message_new_method_call(s->bus, &m, SYSTEMD_SERVICE, SYSTEMD_PATH,
					   SYSTEMD_MANAGER, "SetUnitProperties");
	if (r >= 0)
		r = sd_bus_message_append(m, "sb", p->unit, 1); /* runtime: gone at reboot */
	if (r >= 0)
		r = unit_props_append(m, p);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return error_to(ret_error, r, "cannot make the call for unit %s: %s", p->unit,
				strerror(-r));
	r = sd_bus_call(s->bus, m, ENFORCE_SYSTEMD_TIMEOUT_USEC, &e, NULL);
	if (r >= 0)
		return 0;
	if (sd_bus_error_has_names(&e, "org.freedesktop.systemd1.NoSuchUnit",
				   "org.freedesktop.systemd1.LoadFailed"))
		return error_to(ret_error, -ESRCH, "systemd has no unit %s loaded: %s", p->unit,
				e.message ?: e.name);
	return call_error(s, p, &e, r, ret_error);
}

/* The D-Bus interface of the properties of a unit of @unit's type: only those with a cgroup. */
static const char *unit_interface(const char *unit)
{
	static const char *const types[][2] = {
		{ ".service", "org.freedesktop.systemd1.Service" },
		{ ".scope", "org.freedesktop.systemd1.Scope" },
		{ ".socket", "org.freedesktop.systemd1.Socket" },
		{ ".slice", "org.freedesktop.systemd1.Slice" },
		{ ".mount", "org.freedesktop.systemd1.Mount" },
		{ ".swap", "org.freedesktop.systemd1.Swap" },
	};

	for (size_t i = 0; i < ELEMENTSOF(types); i++)
		if (endswith(unit, types[i][0]))
			return types[i][1];
	return NULL;
}

/* The value of @reply's variant (entered) as a property @name of @kind at the end of @p. */
static int read_value(sd_bus_message *reply, const char *name, enum unit_prop_kind kind,
		      struct unit_props *p)
{
	struct unit_prop *u = unit_props_add(p, name, kind);
	const char *a, *b;
	const void *bytes;
	size_t n;
	int r;

	if (!u)
		return -ENOMEM;
	switch (kind) {
	case UNIT_PROP_STRING:
		r = sd_bus_message_read(reply, "s", &a);
		if (r >= 0 && !(u->s = strdup(a)))
			return -ENOMEM;
		return r;
	case UNIT_PROP_U64:
		return sd_bus_message_read(reply, "t", &u->t);
	case UNIT_PROP_PAIRS:
		r = sd_bus_message_enter_container(reply, 'a', "(ss)");
		while (r >= 0 && (r = sd_bus_message_read(reply, "(ss)", &a, &b)) > 0)
			if (strv_extend(&u->strv, a) < 0 || strv_extend(&u->strv, b) < 0)
				return -ENOMEM;
		return r < 0 ? r : sd_bus_message_exit_container(reply);
	case UNIT_PROP_BYTES:
		r = sd_bus_message_read_array(reply, 'y', &bytes, &n);
		if (r < 0)
			return r;
		u->bytes = malloc(n ?: 1);
		if (!u->bytes)
			return -ENOMEM;
		memcpy(u->bytes, bytes, n);
		u->n_bytes = n;
		return 0;
	case UNIT_PROP_STRV:
	case UNIT_PROP_PIDS:
		break;
	}
	return -EINVAL;
}

static bool props_have(const struct unit_props *p, size_t before, const char *name)
{
	for (size_t i = 0; i < before; i++)
		if (streq(p->items[i].name, name))
			return true;
	return false;
}

static int save(struct enforce_systemd *s, const struct unit_props *set, struct unit_props *saved,
		char **ret_error)
{
	_cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	const char *iface = unit_interface(set->unit), *path;
	_cleanup_free_ char *object = NULL;
	int r;

	if (!iface)
		return error_to(ret_error, -EINVAL,
				"unit %s cannot be confined: only services, scopes, sockets, slices, "
				"mounts and swaps have a cgroup",
				set->unit);
	r = bus_open(s);
	if (r < 0)
		return call_error(s, set, &e, r, ret_error);
	r = sd_bus_call_method(s->bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "GetUnit",
			       &e, &reply, "s", set->unit);
	if (r < 0 && sd_bus_error_has_name(&e, "org.freedesktop.systemd1.NoSuchUnit"))
		return error_to(ret_error, -ESRCH, "systemd has no unit %s loaded", set->unit);
	if (r < 0)
		return call_error(s, set, &e, r, ret_error);
	r = sd_bus_message_read(reply, "o", &path);
	if (r < 0)
		return error_to(ret_error, -EIO, "systemd's answer for unit %s is malformed",
				set->unit);
	object = strdup(path);
	if (!object)
		return -ENOMEM;
	saved->unit = strdup(set->unit);
	if (!saved->unit)
		return -ENOMEM;
	for (size_t i = 0; i < set->n; i++) {
		const struct unit_prop *u = &set->items[i];

		if (props_have(set, i, u->name))
			continue;
		reply = sd_bus_message_unref(reply);
		r = sd_bus_get_property(s->bus, SYSTEMD_SERVICE, object, iface, u->name, &e, &reply,
					unit_prop_signature(u->kind));
		if (r < 0)
			return call_error(s, set, &e, r, ret_error);
		/* its list goes back as it was: emptied, then the unit's own entries appended */
		if (u->kind == UNIT_PROP_PAIRS && !unit_props_add(saved, u->name, u->kind))
			return -ENOMEM;
		r = read_value(reply, u->name, u->kind, saved);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return error_to(ret_error, -EIO, "systemd's %s of unit %s is malformed",
					u->name, set->unit);
	}
	return 0;
}

int enforce_systemd_save(struct enforce_systemd *s, const struct unit_props *set,
			 struct unit_props *ret, char **ret_error)
{
	struct unit_props saved = {};
	int r = save(s, set, &saved, ret_error);

	if (r < 0) {
		unit_props_done(&saved);
		return r;
	}
	*ret = saved;
	return 0;
}
