// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The effects of enforcement: cgroup directories, the bpf() calls, the control files. What the
 * rules and programs are is decided in enforce-rules.c. Each grant's cgroups are named after its
 * allocation, so that a release (also after a restart) finds them without a record of its own.
 */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/grant.h"
#include "core/rules.h"
#include "services/enforce-systemd.h"
#include "services/enforce-unit.h"
#include "services/enforce.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

struct enforcer {
	const struct xpu_host *host;
	struct inventory *inventory;
	struct allocations *allocations;
	enum cgroup_hierarchy hierarchy;
	enum enforce_devices devices;
	char *root;    /* the v2 directory children are made in, or NULL */
	char *root_v1; /* the v1 devices directory, or NULL */
	char *mount_v1; /* where the v1 devices controller is mounted, when known */
	char *dmem_capacity; /* the cgroup2 root's dmem.capacity, when the mount is known */
	struct enforce_systemd *systemd; /* the systemd path, when devices is SYSTEMD */
	char **units;			 /* allocations whose unit this run started */
	char *state_dir; /* where an owner unit's own properties are kept while it is confined */
};

static const char *const devices_names[_ENFORCE_DEVICES_MAX] = {
	[ENFORCE_DEVICES_AUTO] = "auto",
	[ENFORCE_DEVICES_BPF] = "bpf",
	[ENFORCE_DEVICES_V1] = "devices-v1",
	[ENFORCE_DEVICES_SYSTEMD] = "systemd",
	[ENFORCE_DEVICES_NONE] = "none",
};

const char *enforce_devices_to_string(enum enforce_devices d)
{
	return (unsigned)d < _ENFORCE_DEVICES_MAX ? devices_names[d] : NULL;
}

enum enforce_devices enforce_devices_from_string(const char *s)
{
	for (size_t i = 0; s && i < _ENFORCE_DEVICES_MAX; i++)
		if (streq(devices_names[i], s))
			return (enum enforce_devices)i;
	return _ENFORCE_DEVICES_INVALID;
}

void enforce_status_done(struct enforce_status *s)
{
	s->unit = mfree(s->unit);
	s->cgroup = mfree(s->cgroup);
	s->cgroup_v1 = mfree(s->cgroup_v1);
	s->bpf_programs = mfree(s->bpf_programs);
	s->n_bpf_programs = 0;
	s->v1_rules = strv_free(s->v1_rules);
	s->memory_max = mfree(s->memory_max);
	s->cpu_max = mfree(s->cpu_max);
	s->cpuset_cpus = mfree(s->cpuset_cpus);
	s->cpuset_mems = mfree(s->cpuset_mems);
	s->dmem_max = mfree(s->dmem_max);
}

/* ---- bpf() -------------------------------------------------------------------------------- */

static int bpf_call(int cmd, union bpf_attr *attr)
{
	long r = syscall(__NR_bpf, cmd, attr, sizeof(*attr));

	return r < 0 ? -errno : (int)r;
}

int enforce_bpf_load(const struct enforce_rule *rules, size_t n, char **ret_error)
{
	_cleanup_free_ struct bpf_insn *insns = NULL;
	char log_buf[4096] = "";
	union bpf_attr attr;
	size_t n_insns;
	int r;

	r = enforce_bpf_build(rules, n, &insns, &n_insns);
	if (r < 0)
		return r;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = (uint32_t)n_insns;
	attr.license = (uint64_t)(uintptr_t) "GPL";
	r = bpf_call(BPF_PROG_LOAD, &attr);
	if (r >= 0 || !ret_error)
		return r;
	if (r != -EPERM) {
		/* again, for the verifier's reason (a log too small for a good program fails) */
		attr.log_buf = (uint64_t)(uintptr_t)log_buf;
		attr.log_size = sizeof(log_buf);
		attr.log_level = 1;
		safe_close(bpf_call(BPF_PROG_LOAD, &attr));
		log_buf[sizeof(log_buf) - 1] = 0;
	}
	if (asprintf(ret_error, "the device program could not be loaded (BPF %s): %s%s%s",
		     r == -EPERM ? "is not permitted" : "failed", strerror(-r),
		     log_buf[0] ? "; verifier: " : "", log_buf) < 0)
		*ret_error = NULL;
	return r;
}

static int bpf_attach(int cgroup_fd, int prog_fd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.target_fd = (uint32_t)cgroup_fd;
	attr.attach_bpf_fd = (uint32_t)prog_fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	/* beside what the cgroups above hold: every program on the way must allow */
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	return bpf_call(BPF_PROG_ATTACH, &attr);
}

/* The ids of the device programs attached to the cgroup @path itself. */
static int bpf_query(const char *path, uint32_t **ret, size_t *ret_n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ uint32_t *ids = calloc(64, sizeof(*ids));
	union bpf_attr attr;
	int r;

	if (fd < 0)
		return -errno;
	if (!ids)
		return -ENOMEM;
	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = (uint32_t)fd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
	attr.query.prog_cnt = 64;
	r = bpf_call(BPF_PROG_QUERY, &attr);
	if (r < 0)
		return r;
	*ret_n = attr.query.prog_cnt;
	*ret = TAKE_PTR(ids);
	return 0;
}

/* ---- a grant's rules ---------------------------------------------------------------------- */

static int error_at(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int error_at(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(ret_error, fmt, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return r;
}

/* The pseudo-devices and the grant's nodes, as they are below the host's /dev. */
static int grant_rules(const struct enforcer *e, const struct grant *g,
		       struct enforce_rule **ret, size_t *ret_n, char **ret_error)
{
	size_t n = 0, max = enforce_n_pseudo_rules + strv_length(g->device_nodes);
	_cleanup_free_ struct enforce_rule *rules = calloc(max ?: 1, sizeof(*rules));

	if (!rules)
		return -ENOMEM;
	for (size_t i = 0; i < enforce_n_pseudo_rules; i++)
		rules[n++] = enforce_pseudo_rules[i];
	STRV_FOREACH(node, g->device_nodes) {
		const char *rel = startswith(*node, "/dev/");
		struct stat st;

		if (!rel || e->host->dev_fd < 0 || fstatat(e->host->dev_fd, rel, &st, 0) < 0)
			return error_at(ret_error, -ENODEV, "device node %s cannot be found: %s",
					*node, rel && e->host->dev_fd >= 0 ? strerror(errno)
									    : "no /dev");
		if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
			return error_at(ret_error, -ENODEV, "%s is not a device node", *node);
		rules[n++] = (struct enforce_rule){ .type = S_ISCHR(st.st_mode) ? 'c' : 'b',
						    .major = major(st.st_rdev),
						    .minor = minor(st.st_rdev),
						    .access = ENFORCE_ACC_RW };
	}
	*ret = TAKE_PTR(rules);
	*ret_n = n;
	return 0;
}

/* @mount + @path, without a doubled slash. */
static char *join(const char *mount, const char *path)
{
	char *s;

	if (asprintf(&s, "%s%s", mount, streq(path, "/") ? "" : path) < 0)
		return NULL;
	return s;
}

/* ---- the cgroups of a grant --------------------------------------------------------------- */

/* What was made for one grant so far: undone in reverse when a later step fails. */
struct confinement {
	char *dir, *dir_v1;
	int dir_fd;
	char *pid;
	char *old_v1; /* where the process was in the v1 hierarchy before it moved */
	bool moved_v1, moved;
};

static void confinement_undo(struct confinement *c)
{
	_cleanup_free_ char *procs = NULL;

	/* out of the children first: a cgroup with a process in it cannot be removed */
	if (c->moved_v1 && c->old_v1 && asprintf(&procs, "%s/cgroup.procs", c->old_v1) >= 0)
		(void)write_attr_at(AT_FDCWD, procs, c->pid);
	if (c->dir_fd >= 0)
		c->dir_fd = safe_close(c->dir_fd);
	if (c->dir_v1 && rmdir(c->dir_v1) < 0 && errno != ENOENT)
		log_warning_errno(-errno, "Failed to remove cgroup %s, ignoring: %m", c->dir_v1);
	if (c->dir && rmdir(c->dir) < 0 && errno != ENOENT)
		log_warning_errno(-errno, "Failed to remove cgroup %s, ignoring: %m", c->dir);
}

static void confinement_done(struct confinement *c)
{
	c->dir = mfree(c->dir);
	c->dir_v1 = mfree(c->dir_v1);
	c->dir_fd = safe_close(c->dir_fd);
	c->pid = mfree(c->pid);
	c->old_v1 = mfree(c->old_v1);
}

static int make_cgroup(const char *root, const char *id, char **ret, char **ret_error)
{
	_cleanup_free_ char *dir = NULL;

	if (asprintf(&dir, "%s/%s", root, id) < 0)
		return -ENOMEM;
	if (mkdir(dir, 0755) < 0) {
		int r = negative_errno();

		return error_at(ret_error, r,
				"cannot make cgroup %s: %s (is %s a cgroup directory delegated to "
				"xpud and writable?)",
				dir, strerror(-r), root);
	}
	*ret = TAKE_PTR(dir);
	return 0;
}

/* Writes @value to @dir/@file; an error names both. */
static int write_control(const char *dir, const char *file, const char *value, char **ret_error)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s", dir, file) < 0)
		return -ENOMEM;
	r = write_attr_at(AT_FDCWD, path, value);
	if (r == -ENOENT)
		return error_at(ret_error, -EOPNOTSUPP,
				"%s is not there: the controller is not enabled for the children of "
				"its parent (cgroup.subtree_control)",
				path);
	if (r < 0)
		return error_at(ret_error, r, "cannot write '%s' to %s: %s", value, path,
				strerror(-r));
	return 0;
}

/* Whether the v2 cgroup @dir has no live process (a v1 one has no cgroup.events: never). */
static bool cgroup_unpopulated_at(const char *dir)
{
	_cleanup_free_ char *path = NULL, *text = NULL;

	if (asprintf(&path, "%s/cgroup.events", dir) < 0 ||
	    read_attr_at(AT_FDCWD, path, 4096, &text) < 0)
		return false;
	return strstr(text, "populated 0") != NULL;
}

/*
 * Moves the owner into @dir (its @id) and checks it is there: the kernel takes the PID of a
 * process that exited and was not reaped yet without moving it. A process that exited is -ESRCH
 * with its reason. @controller: the v1 hierarchy's, NULL for the unified one.
 */
static int move_into(const char *dir, const char *id, const char *controller, const char *pid,
		     char **ret_error)
{
	_cleanup_free_ char *procfile = NULL, *text = NULL, *now = NULL;
	const char *base;
	int r = write_control(dir, "cgroup.procs", pid, ret_error);

	if (r < 0 && r != -ESRCH)
		return r;
	if (r >= 0) {
		if (asprintf(&procfile, "/proc/%s/cgroup", pid) < 0)
			return -ENOMEM;
		r = read_attr_at(AT_FDCWD, procfile, 64 * 1024, &text);
		if (r >= 0)
			r = cgroup_path_parse(text, controller, &now);
		if (r == -ENOMEM)
			return r;
		base = r >= 0 ? strrchr(now, '/') : NULL;
		if (base && streq(base + 1, id) && !cgroup_unpopulated_at(dir))
			return 0;
	}
	*ret_error = mfree(*ret_error);
	return error_at(ret_error, -ESRCH,
			"owner process %s exited before it could be moved into its cgroup", pid);
}

static int set_limits(const struct enforcer *e, const char *dir, const struct enforce_limits *l,
		      const struct grant *g, char **ret_error)
{
	char buf[64];
	int r;

	if (l->numa_cpus) {
		if (g->numa_node < 0 || !g->cpu_list)
			return error_at(ret_error, -EINVAL,
					"the grant's slices are not on one NUMA node with known "
					"CPUs");
		snprintf(buf, sizeof(buf), "%d", g->numa_node);
		r = write_control(dir, "cpuset.cpus", g->cpu_list, ret_error);
		if (r >= 0)
			r = write_control(dir, "cpuset.mems", buf, ret_error);
		if (r < 0)
			return r;
	}
	if (l->memory_max) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)l->memory_max);
		r = write_control(dir, "memory.max", buf, ret_error);
		if (r < 0)
			return r;
	}
	if (l->cpu_quota) {
		r = enforce_cpu_max(l->cpu_quota, buf, sizeof(buf));
		if (r < 0)
			return error_at(ret_error, -EINVAL, "cpu quota %u%% is out of range",
					l->cpu_quota);
		r = write_control(dir, "cpu.max", buf, ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}

int enforce_dmem_set(const char *dir, const char *capacity, const char *pci, uint64_t bytes,
		     char **ret_error)
{
	_cleanup_strv_free_ char **lines = NULL;
	_cleanup_free_ char *path = NULL;
	int r;

	if (asprintf(&path, "%s/dmem.max", dir) < 0)
		return -ENOMEM;
	if (access(path, F_OK) < 0)
		return 0;
	r = enforce_dmem_lines(capacity, pci, bytes, &lines);
	if (r < 0)
		return r;
	STRV_FOREACH(l, lines) {
		r = write_control(dir, "dmem.max", *l, ret_error);
		if (r < 0)
			return r;
	}
	return lines ? 1 : 0;
}

/* A memory share: a slice of part of its device's memory, which its size should limit. */
static const struct xpu_device *memory_share(const struct enforcer *e, const char *slice_id,
					     const struct xpu_slice **ret)
{
	const struct slice_list *sl = inventory_slices(e->inventory);

	for (size_t i = 0; i < sl->n; i++) {
		const struct xpu_slice *s = sl->items[i];
		const struct xpu_device *d;

		if (!streq(s->id, slice_id))
			continue;
		d = device_list_find(inventory_devices(e->inventory), s->device_id);
		if (!d || !s->shared || !s->memory_bytes || s->memory_bytes >= d->memory_bytes)
			return NULL;
		*ret = s;
		return d;
	}
	return NULL;
}

/* dmem.max for each memory share of the grant, where the kernel has the controller. */
static int set_dmem(const struct enforcer *e, const char *dir, char **slices,
		    char **ret_error)
{
	_cleanup_free_ char *capacity = NULL;
	int r;

	if (!e->dmem_capacity || read_attr_at(AT_FDCWD, e->dmem_capacity, 64 * 1024, &capacity) < 0)
		return 0;
	STRV_FOREACH(id, slices) {
		const struct xpu_slice *s;
		const struct xpu_device *d = memory_share(e, *id, &s);

		if (!d || !d->has_pci)
			continue;
		r = enforce_dmem_set(dir, capacity, d->pci.address, s->memory_bytes, ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}

static int confine(struct enforcer *e, const struct allocation *a, const struct enforce_request *req,
		   struct confinement *c, char **ret_error)
{
	_cleanup_(grant_done) struct grant g = { .numa_node = -1 };
	_cleanup_free_ struct enforce_rule *rules = NULL;
	_cleanup_close_ int prog = -EBADF;
	size_t n_rules = 0;
	char line[64];
	int r;

	if (a->owner.kind == OWNER_UNIT)
		return error_at(ret_error, -EOPNOTSUPP,
				"an owner unit is confined through systemd, which does not run this "
				"host; enforce here needs an owner process (owner.pid)");
	if (a->owner.kind != OWNER_PID)
		return error_at(ret_error, -EINVAL, "enforce needs an owner process (owner.pid)");
	if (e->devices == ENFORCE_DEVICES_NONE)
		return error_at(ret_error, -EOPNOTSUPP,
				"enforcement is not available on this host (cgroup hierarchy: %s; "
				"see enforce: in xpud.yaml)",
				cgroup_hierarchy_to_string(e->hierarchy));
	c->pid = strdup(a->owner.value);
	if (!c->pid)
		return -ENOMEM;
	r = grant_build(a->slices, inventory_devices(e->inventory), inventory_slices(e->inventory),
			&g);
	if (r < 0)
		return r;
	r = grant_rules(e, &g, &rules, &n_rules, ret_error);
	if (r < 0)
		return r;

	if (e->root) {
		r = make_cgroup(e->root, a->id, &c->dir, ret_error);
		if (r < 0 || !c->dir)
			return r < 0 ? r : -ENOMEM;
		c->dir_fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->dir_fd < 0)
			return error_at(ret_error, negative_errno(), "cannot open %s: %m", c->dir);
	}
	if (e->devices == ENFORCE_DEVICES_BPF) {
		prog = enforce_bpf_load(rules, n_rules, ret_error);
		if (prog < 0)
			return prog;
		r = bpf_attach(c->dir_fd, prog);
		if (r < 0)
			return error_at(ret_error, r, "cannot attach the device program to %s: %s",
					c->dir, strerror(-r));
	} else {
		_cleanup_free_ char *self = NULL, *procfile = NULL, *text = NULL;

		r = make_cgroup(e->root_v1, a->id, &c->dir_v1, ret_error);
		if (r < 0)
			return r;
		r = write_control(c->dir_v1, "devices.deny", "a", ret_error);
		for (size_t i = 0; r >= 0 && i < n_rules; i++) {
			r = enforce_v1_line(&rules[i], line, sizeof(line));
			if (r >= 0)
				r = write_control(c->dir_v1, "devices.allow", line, ret_error);
		}
		if (r < 0)
			return r;
		/* where the owner is now, to move it back when a later step fails */
		if (asprintf(&procfile, "/proc/%s/cgroup", c->pid) < 0)
			return -ENOMEM;
		r = read_attr_at(AT_FDCWD, procfile, 64 * 1024, &text);
		if (r < 0)
			return error_at(ret_error, -ESRCH,
					"owner process %s exited before it could be moved into its "
					"cgroup",
					c->pid);
		if (e->mount_v1 && cgroup_path_parse(text, "devices", &self) >= 0)
			c->old_v1 = join(e->mount_v1, self);
		else
			c->old_v1 = strdup(e->root_v1);
		if (!c->old_v1)
			return -ENOMEM;
	}
	if (c->dir) {
		r = set_limits(e, c->dir, &req->limits, &g, ret_error);
		if (r >= 0)
			r = set_dmem(e, c->dir, a->slices, ret_error);
		if (r < 0)
			return r;
	}
	if (c->dir_v1) {
		r = move_into(c->dir_v1, a->id, "devices", c->pid, ret_error);
		if (r < 0)
			return r;
		c->moved_v1 = true;
	}
	if (c->dir) {
		r = move_into(c->dir, a->id, NULL, c->pid, ret_error);
		if (r < 0)
			return r;
		c->moved = true;
	}
	return 0;
}

/* ---- existing units: their own properties kept while confined ------------------------------ */

/*
 * SetUnitProperties changes an existing unit until it is changed back (runtime: until a
 * reboot), also after the allocation is gone: what the unit had before is kept in
 * <state-dir>/unit-<id>.json from before the unit is confined until it has it back, so that a
 * release also after xpud's restart gives it back.
 */
static char *saved_path(const struct enforcer *e, const char *id)
{
	char *p;

	if (!e->state_dir || asprintf(&p, "%s/unit-%s.json", e->state_dir, id) < 0)
		return NULL;
	return p;
}

static int saved_write(const struct enforcer *e, const char *id, const struct unit_props *saved,
		       char **ret_error)
{
	_cleanup_free_ char *path = saved_path(e, id), *text = NULL;
	json_auto_t *doc = NULL;
	_cleanup_close_ int dfd = -EBADF;
	int r;

	if (!path || unit_props_to_json(saved, &doc) < 0 || !(text = json_dumps(doc, JSON_COMPACT)))
		return -ENOMEM;
	dfd = open(e->state_dir, O_DIRECTORY | O_CLOEXEC);
	r = dfd < 0 ? -errno : write_file_atomic_at(dfd, strrchr(path, '/') + 1, text, strlen(text),
						     0600);
	if (r < 0)
		return error_at(ret_error, r, "cannot keep unit %s's own properties in %s: %s",
				saved->unit, path, strerror(-r));
	return 0;
}

/* The properties allocation @id's owner unit had. -ENOENT: it confined none; -EINVAL, -ENOMEM. */
static int saved_read(const struct enforcer *e, const char *id, struct unit_props *ret)
{
	_cleanup_free_ char *path = saved_path(e, id), *text = NULL;
	json_auto_t *doc = NULL;
	int r;

	if (!path)
		return e->state_dir ? -ENOMEM : -ENOENT;
	r = read_attr_at(AT_FDCWD, path, 64 * 1024, &text);
	if (r < 0)
		return r;
	doc = json_loads(text, 0, NULL);
	return doc ? unit_props_from_json(doc, ret) : -EINVAL;
}

static void saved_remove(const struct enforcer *e, const char *id)
{
	_cleanup_free_ char *path = saved_path(e, id);

	if (path && unlink(path) < 0 && errno != ENOENT)
		log_warning_errno(-errno, "Failed to remove %s, ignoring: %m", path);
}

/* Gives allocation @id's owner unit the properties it had before it was confined, if it was. */
static void unit_give_back(struct enforcer *e, const char *id)
{
	_cleanup_(unit_props_done) struct unit_props saved = {};
	_cleanup_free_ char *error = NULL;
	int r = saved_read(e, id, &saved);

	if (r == -ENOENT)
		return;
	if (r < 0)
		log_warning_errno(r, "Allocation %s: the owner unit's own properties cannot be read "
				     "back, it stays confined: %m", id);
	else if ((r = enforce_systemd_set(e->systemd, &saved, &error)) == -ESRCH)
		log_info("Allocation %s: unit %s is gone, and its confinement with it.", id,
			 saved.unit);
	else if (r < 0)
		log_warning("Allocation %s: unit %s stays confined (%s); `systemctl revert %s` "
			    "drops the properties xpud set.",
			    id, saved.unit, error ?: strerror(-r), saved.unit);
	else
		log_info("Allocation %s: unit %s has its own device policy and limits back.", id,
			 saved.unit);
	if (r != -ENOMEM)
		saved_remove(e, id);
}

/* The existing unit @p->unit confined as @p, after what it has was kept. */
static int confine_owner_unit(struct enforcer *e, const char *id, const struct unit_props *p,
			      char **ret_error)
{
	_cleanup_(unit_props_done) struct unit_props saved = {};
	int r;

	r = enforce_systemd_save(e->systemd, p, &saved, ret_error);
	if (r < 0)
		return r;
	r = saved_write(e, id, &saved, ret_error);
	if (r < 0)
		return r;
	r = enforce_systemd_set(e->systemd, p, ret_error);
	if (r < 0) {
		_cleanup_free_ char *ignored = NULL;

		/* systemd applies all of a call or none; after no answer, the call may have been */
		if (r == -ETIMEDOUT || r == -ECONNREFUSED)
			(void)enforce_systemd_set(e->systemd, &saved, &ignored);
		saved_remove(e, id);
		return r;
	}
	log_info("Allocation %s: unit %s confined, devices by systemd.", id, p->unit);
	return 0;
}

/*
 * The systemd path: a transient scope takes the owner process, or the owner unit is set its
 * properties; systemd confines it.
 */
static int confine_unit(struct enforcer *e, const struct allocation *a,
			const struct enforce_request *req, char **ret_error)
{
	_cleanup_(grant_done) struct grant g = { .numa_node = -1 };
	_cleanup_(unit_props_done) struct unit_props p = {};
	bool unit = a->owner.kind == OWNER_UNIT;
	unsigned pid = 0;
	int r;

	if (!unit && (a->owner.kind != OWNER_PID || safe_atou(a->owner.value, &pid) < 0))
		return error_at(ret_error, -EINVAL,
				"enforce needs an owner process (owner.pid) or unit (owner.unit)");
	r = grant_build(a->slices, inventory_devices(e->inventory), inventory_slices(e->inventory),
			&g);
	if (r < 0)
		return r;
	if (unit)
		r = unit_props_build_existing(a->id, a->owner.value, &g, &req->limits, &p);
	else
		r = unit_props_build(a->id, &g, (pid_t)pid, &req->limits, &p);
	if (r == -EINVAL && req->limits.numa_cpus)
		return error_at(ret_error, r,
				"the grant's slices are not on one NUMA node with known CPUs");
	if (r == -EINVAL)
		return error_at(ret_error, r, "cpu quota %u%% is out of range",
				req->limits.cpu_quota);
	if (r < 0)
		return r;
	if (unit)
		return confine_owner_unit(e, a->id, &p, ret_error);
	r = enforce_systemd_start(e->systemd, &p, ret_error);
	if (r < 0)
		return r;
	if (strv_extend(&e->units, a->id) < 0)
		log_oom(); /* only the read-back's "unit" misses it */
	log_info("Allocation %s: owner %u confined in %s (%s), devices by systemd.", a->id, pid,
		 p.unit, ENFORCE_UNIT_SLICE);
	return 0;
}

static int on_granted(const struct allocation *a, const void *args, char **ret_error,
		      void *userdata)
{
	const struct enforce_request *req = args;
	struct enforcer *e = userdata;
	struct confinement c = { .dir_fd = -EBADF };
	int r;

	if (!req || !req->on)
		return 0;
	if (e->devices == ENFORCE_DEVICES_SYSTEMD) {
		r = confine_unit(e, a, req, ret_error);
		if (r == -ENOMEM && !*ret_error)
			*ret_error = strdup("out of memory");
		return r;
	}
	r = confine(e, a, req, &c, ret_error);
	if (r < 0) {
		confinement_undo(&c);
		if (r == -ENOMEM && !*ret_error)
			*ret_error = strdup("out of memory");
	} else
		log_info("Allocation %s: owner %s confined in %s%s%s, devices by %s.", a->id,
			 c.pid, c.dir ?: "", c.dir && c.dir_v1 ? " and " : "", c.dir_v1 ?: "",
			 enforce_devices_to_string(e->devices));
	confinement_done(&c);
	return r;
}

/*
 * A cgroup whose processes outlive their grant keeps only the pseudo-devices: what was granted
 * may go to another workload now. The v2 program is attached beside the grant's (each must
 * allow); the v1 list is replaced.
 */
static int revoke_devices(const char *dir, bool v1)
{
	_cleanup_close_ int prog = -EBADF, fd = -EBADF;
	char line[64];
	int r;

	if (v1) {
		r = write_control(dir, "devices.deny", "a", NULL);
		for (size_t i = 0; r >= 0 && i < enforce_n_pseudo_rules; i++) {
			r = enforce_v1_line(&enforce_pseudo_rules[i], line, sizeof(line));
			if (r >= 0)
				r = write_control(dir, "devices.allow", line, NULL);
		}
		return r;
	}
	prog = enforce_bpf_load(enforce_pseudo_rules, enforce_n_pseudo_rules, NULL);
	if (prog < 0)
		return prog;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return bpf_attach(fd, prog);
}

/* Removes @root/@id when it exists; when it still has processes, revokes its devices. */
static void remove_cgroup(const struct enforcer *e, const char *root, const char *id)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	if (!root || asprintf(&dir, "%s/%s", root, id) < 0)
		return;
	if (rmdir(dir) >= 0) {
		log_info("Allocation %s: cgroup %s removed.", id, dir);
		return;
	}
	if (errno != EBUSY) {
		if (errno != ENOENT)
			log_warning_errno(-errno,
					  "Allocation %s: failed to remove cgroup %s, ignoring: %m",
					  id, dir);
		return;
	}
	if (root != e->root_v1 && e->devices != ENFORCE_DEVICES_BPF) {
		/* its devices are the v1 directory's */
		log_info("Allocation %s: cgroup %s still has processes; it is removed at xpud's "
			 "next start once empty.",
			 id, dir);
		return;
	}
	r = revoke_devices(dir, root == e->root_v1);
	if (r < 0)
		log_warning_errno(r, "Allocation %s: cgroup %s still has processes, and its devices "
				     "cannot be revoked (%m): they keep the released devices.",
				  id, dir);
	else
		log_info("Allocation %s: cgroup %s still has processes; its devices are revoked "
			 "(the pseudo-devices remain). It is removed at xpud's next start once "
			 "empty.",
			 id, dir);
}

/* The scope of a grant released while its processes run keeps only the pseudo-devices. */
static void revoke_scope(struct enforcer *e, const char *id)
{
	_cleanup_(unit_props_done) struct unit_props p = {};
	_cleanup_free_ char *error = NULL;
	int r;

	if (asprintf(&p.unit, "xpu-%s.scope", id) < 0) {
		p.unit = NULL;
		return;
	}
	/* DevicePolicy=closed stays: an empty DeviceAllow= leaves the pseudo-devices */
	if (!unit_props_add(&p, "DeviceAllow", UNIT_PROP_PAIRS))
		return;
	r = enforce_systemd_set(e->systemd, &p, &error);
	if (r >= 0)
		log_info("Allocation %s: released while %s runs; its devices are revoked (the "
			 "pseudo-devices remain).",
			 id, p.unit);
	else if (r != -ESRCH)
		log_warning("Allocation %s: %s still has processes, and its devices cannot be "
			    "revoked (%s): they keep the released devices.",
			    id, p.unit, error ?: strerror(-r));
}

static void on_released(const struct allocation *a, void *userdata)
{
	struct enforcer *e = userdata;

	if (e->devices == ENFORCE_DEVICES_SYSTEMD) {
		if (a->owner.kind == OWNER_UNIT)
			unit_give_back(e, a->id);
		else if (strv_contains(e->units, a->id))
			revoke_scope(e, a->id);
		/* systemd removes the scope when its last process exits, as it does any scope */
		for (char **u = e->units; u && *u; u++)
			if (streq(*u, a->id)) {
				free(*u);
				memmove(u, u + 1, (strv_length(u + 1) + 1) * sizeof(*u));
				break;
			}
		return;
	}
	remove_cgroup(e, e->root_v1, a->id);
	remove_cgroup(e, e->root, a->id);
}

static const struct allocations_observer observer = {
	.granted = on_granted,
	.released = on_released,
};

/* Children named like allocations ("a-" and 16 hex digits) that the ledger does not have. */
static void sweep(struct enforcer *e, const char *root)
{
	DIR *d = root ? opendir(root) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		const char *hex = startswith(de->d_name, "a-");

		if (de->d_type != DT_DIR || !hex || strlen(hex) != 16 ||
		    strspn(hex, "0123456789abcdef") != 16 ||
		    ledger_find(allocations_ledger(e->allocations), de->d_name))
			continue;
		remove_cgroup(e, root, de->d_name);
	}
	if (d)
		closedir(d);
}

/* Owner units kept confined for allocations the ledger no longer has (released while xpud was
 * not running): given their own properties back. */
static void sweep_saved(struct enforcer *e)
{
	DIR *d = e->state_dir ? opendir(e->state_dir) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		const char *hex = startswith(de->d_name, "unit-a-");
		char id[19];

		if (!hex || strlen(hex) != 16 + strlen(".json") || !endswith(hex, ".json") ||
		    strspn(hex, "0123456789abcdef") != 16)
			continue;
		snprintf(id, sizeof(id), "a-%.16s", hex);
		if (!ledger_find(allocations_ledger(e->allocations), id))
			unit_give_back(e, id);
	}
	if (d)
		closedir(d);
}

int enforcer_observe(struct enforcer *e, struct allocations *allocations)
{
	e->allocations = allocations;
	allocations_set_observer(allocations, &observer, e, NULL);
	if (e->devices == ENFORCE_DEVICES_SYSTEMD) {
		sweep_saved(e);
		return 0;
	}
	sweep(e, e->root);
	sweep(e, e->root_v1);
	return 0;
}

/* ---- detection ---------------------------------------------------------------------------- */

static bool is_fs(const char *path, long magic)
{
	struct statfs sfs;

	return path && statfs(path, &sfs) >= 0 && sfs.f_type == magic;
}

int enforcer_new(const struct xpu_host *host, const struct enforce_settings *settings,
		 struct inventory *inv, struct enforcer **ret)
{
	_cleanup_(enforcer_freep) struct enforcer *e = calloc(1, sizeof(*e));
	_cleanup_(cgroup_mounts_done) struct cgroup_mounts m = {};
	_cleanup_free_ char *mountinfo = NULL, *self = NULL, *self_v1 = NULL;
	enum enforce_devices want = settings ? settings->devices : ENFORCE_DEVICES_AUTO;
	bool systemd = want == ENFORCE_DEVICES_AUTO && enforce_systemd_booted(host);
	int r;

	if (!e)
		return log_oom();
	e->host = host;
	e->inventory = inv;
	if (settings && settings->state_dir && !(e->state_dir = strdup(settings->state_dir)))
		return log_oom();
	/* the host's mount table: none in a generated tree, so nothing is detected there */
	if (host->proc_fd >= 0 && read_attr_at(host->proc_fd, "self/mountinfo", 1024 * 1024,
					       &mountinfo) >= 0) {
		_cleanup_free_ char *pc = NULL;

		if (cgroup_mounts_parse(mountinfo, &m) < 0)
			return log_oom();
		if (read_attr_at(host->proc_fd, "self/cgroup", 64 * 1024, &pc) >= 0) {
			(void)cgroup_path_parse(pc, NULL, &self);
			(void)cgroup_path_parse(pc, "devices", &self_v1);
		}
	}
	e->hierarchy = m.hierarchy;
	e->mount_v1 = TAKE_PTR(m.devices);
	if (m.unified && asprintf(&e->dmem_capacity, "%s/dmem.capacity", m.unified) < 0)
		return log_oom();
	if (settings && settings->cgroup_root)
		e->root = strdup(settings->cgroup_root);
	else if (m.unified)
		/* xpud's own cgroup: the one a service manager delegates to it */
		e->root = join(m.unified, self ?: "/");
	if (settings && settings->devices_v1_root)
		e->root_v1 = strdup(settings->devices_v1_root);
	else if (e->mount_v1)
		e->root_v1 = join(e->mount_v1, self_v1 ?: "/");
	if ((settings && settings->cgroup_root && !e->root) ||
	    (settings && settings->devices_v1_root && !e->root_v1))
		return log_oom();
	if (e->root && !is_fs(e->root, CGROUP2_SUPER_MAGIC)) {
		log_warning("Enforcement: %s is not a cgroup2 directory, it is not used.", e->root);
		e->root = mfree(e->root);
	}
	if (e->root_v1 && !is_fs(e->root_v1, CGROUP_SUPER_MAGIC)) {
		log_warning("Enforcement: %s is not a cgroup v1 directory, it is not used.",
			    e->root_v1);
		e->root_v1 = mfree(e->root_v1);
	}
	/* a configured root says what the host is, also where no mount table was read */
	if (e->hierarchy == CGROUP_HIERARCHY_NONE && (e->root || e->root_v1))
		e->hierarchy = e->root ? (e->root_v1 ? CGROUP_HIERARCHY_HYBRID
						     : CGROUP_HIERARCHY_UNIFIED)
				       : CGROUP_HIERARCHY_LEGACY;

	if (want == ENFORCE_DEVICES_AUTO)
		want = e->root ? ENFORCE_DEVICES_BPF : ENFORCE_DEVICES_V1;
	if ((want == ENFORCE_DEVICES_BPF && !e->root) || (want == ENFORCE_DEVICES_V1 && !e->root_v1))
		want = ENFORCE_DEVICES_NONE;
	e->devices = want;
	if (systemd) {
		/* systemd confines its units itself; their cgroups are read back below the slice */
		r = enforce_systemd_new(host, secure_getenv(ENFORCE_SYSTEMD_BUS_ENV), &e->systemd);
		if (r < 0)
			return log_oom();
		e->devices = ENFORCE_DEVICES_SYSTEMD;
		e->root = mfree(e->root);
		e->root_v1 = mfree(e->root_v1);
		if (m.unified && !(e->root = join(m.unified, "/" ENFORCE_UNIT_SLICE)))
			return log_oom();
		log_info("Enforcement: systemd (over %s), grants confined in transient scopes "
			 "under %s; cgroup hierarchy %s.",
			 enforce_systemd_address(e->systemd), ENFORCE_UNIT_SLICE,
			 cgroup_hierarchy_to_string(e->hierarchy));
	} else if (e->devices == ENFORCE_DEVICES_NONE)
		log_info("Enforcement: cgroup hierarchy %s, no cgroup directory to confine grants "
			 "in; grants asking to be enforced are refused.",
			 cgroup_hierarchy_to_string(e->hierarchy));
	else
		log_info("Enforcement: cgroup hierarchy %s, grants confined in %s%s%s, devices by "
			 "%s.",
			 cgroup_hierarchy_to_string(e->hierarchy), e->root ?: "",
			 e->root && e->devices == ENFORCE_DEVICES_V1 ? " and " : "",
			 e->devices == ENFORCE_DEVICES_V1 ? e->root_v1 : "",
			 enforce_devices_to_string(e->devices));
	*ret = TAKE_PTR(e);
	return 0;
}

struct enforcer *enforcer_free(struct enforcer *e)
{
	if (!e)
		return NULL;
	if (e->allocations)
		allocations_set_observer(e->allocations, NULL, NULL, NULL);
	free(e->root);
	free(e->root_v1);
	free(e->mount_v1);
	free(e->dmem_capacity);
	enforce_systemd_free(e->systemd);
	strv_free(e->units);
	free(e->state_dir);
	free(e);
	return NULL;
}

enum cgroup_hierarchy enforcer_hierarchy(const struct enforcer *e)
{
	return e ? e->hierarchy : CGROUP_HIERARCHY_NONE;
}

enum enforce_devices enforcer_devices(const struct enforcer *e)
{
	return e ? e->devices : ENFORCE_DEVICES_NONE;
}

const char *enforcer_mode(const struct enforcer *e)
{
	switch (enforcer_devices(e)) {
	case ENFORCE_DEVICES_SYSTEMD:
		return "systemd";
	case ENFORCE_DEVICES_BPF:
		return "cgroup2-bpf";
	case ENFORCE_DEVICES_V1:
		return "devices-v1";
	default:
		return "none";
	}
}

const char *enforcer_cgroup_root(const struct enforcer *e)
{
	return e ? e->root : NULL;
}

/* ---- read back ---------------------------------------------------------------------------- */

/* @dir/@file's content without its trailing newline, or NULL when absent. */
static int read_control(const char *dir, const char *file, char **ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	int r;

	if (asprintf(&path, "%s/%s", dir, file) < 0)
		return -ENOMEM;
	r = read_attr_at(AT_FDCWD, path, 64 * 1024, &text);
	if (r == -ENOMEM)
		return r;
	*ret = r < 0 ? NULL : strstrip_trailing(TAKE_PTR(text));
	return 0;
}

/* Who holds allocation @id's memory shares to their size (enforce_status.device_memory). */
static const char *device_memory(const struct enforcer *e, const char *id, const char *dmem_max)
{
	const struct allocation *a =
		e->allocations ? ledger_find(allocations_ledger(e->allocations), id) : NULL;
	const char *how = "none";

	/* a line of dmem.max other than "REGION max" holds a limit */
	for (const char *l = dmem_max; l && *l;) {
		size_t len = strcspn(l, "\n");
		const char *sp = memchr(l, ' ', len);

		if (sp && strncmp(sp, " max", 4) != 0)
			return "dmem";
		l += len + (l[len] != 0);
	}
	STRV_FOREACH(slice, a ? a->slices : NULL) {
		const struct xpu_slice *s;
		const struct xpu_device *d = memory_share(e, *slice, &s);

		if (d && d->rules && d->rules->share_edits)
			how = "advisory (runtime)";
		else if (d && streq(how, "none"))
			how = "advisory (none)";
	}
	return how;
}

/* Allocation @id's owner unit, if it confined one: its name, and its cgroup where readable. */
static int owner_unit_read(const struct enforcer *e, const char *id, struct enforce_status *s)
{
	_cleanup_(unit_props_done) struct unit_props saved = {};
	const struct allocation *a =
		e->allocations ? ledger_find(allocations_ledger(e->allocations), id) : NULL;
	int r = saved_read(e, id, &saved);

	if (r < 0)
		return r;
	s->unit = TAKE_PTR(saved.unit);
	if (a && allocations_owner_cgroup(e->allocations, &a->owner, &s->cgroup) == -ENOMEM)
		return -ENOMEM;
	if (s->cgroup && !is_fs(s->cgroup, CGROUP2_SUPER_MAGIC))
		s->cgroup = mfree(s->cgroup);
	/* asked of systemd, whose cgroup this host does not show us */
	if (!s->cgroup)
		s->devices = ENFORCE_DEVICES_SYSTEMD;
	return 0;
}

int enforcer_read(const struct enforcer *e, const char *id, struct enforce_status *ret)
{
	_cleanup_(enforce_status_done) struct enforce_status s = { .devices = ENFORCE_DEVICES_NONE };
	_cleanup_free_ char *list = NULL;
	int r;

	if (!e)
		return -ENOENT;
	if (e->devices == ENFORCE_DEVICES_SYSTEMD && (r = owner_unit_read(e, id, &s)) != -ENOENT) {
		if (r < 0)
			return r;
	} else if (e->devices == ENFORCE_DEVICES_SYSTEMD) {
		if (asprintf(&s.unit, "xpu-%s.scope", id) < 0) {
			s.unit = NULL;
			return -ENOMEM;
		}
		if (e->root && asprintf(&s.cgroup, "%s/%s", e->root, s.unit) < 0)
			return -ENOMEM;
		if (s.cgroup && access(s.cgroup, F_OK) < 0)
			s.cgroup = mfree(s.cgroup);
		if (!s.cgroup && !strv_contains(e->units, id))
			return -ENOENT;
		/* asked of systemd, whose cgroup this host does not show us */
		if (!s.cgroup)
			s.devices = ENFORCE_DEVICES_SYSTEMD;
	} else if (e->root && asprintf(&s.cgroup, "%s/%s", e->root, id) < 0)
		return -ENOMEM;
	if (e->root_v1 && asprintf(&s.cgroup_v1, "%s/%s", e->root_v1, id) < 0)
		return -ENOMEM;
	if (s.cgroup && access(s.cgroup, F_OK) < 0)
		s.cgroup = mfree(s.cgroup);
	if (s.cgroup_v1 && access(s.cgroup_v1, F_OK) < 0)
		s.cgroup_v1 = mfree(s.cgroup_v1);
	if (!s.cgroup && !s.cgroup_v1 && !s.unit)
		return -ENOENT;
	if (s.cgroup) {
		r = bpf_query(s.cgroup, &s.bpf_programs, &s.n_bpf_programs);
		if (r == -ENOMEM)
			return r;
		if (r >= 0 && s.n_bpf_programs)
			s.devices = ENFORCE_DEVICES_BPF;
		if ((r = read_control(s.cgroup, "memory.max", &s.memory_max)) < 0 ||
		    (r = read_control(s.cgroup, "cpu.max", &s.cpu_max)) < 0 ||
		    (r = read_control(s.cgroup, "cpuset.cpus", &s.cpuset_cpus)) < 0 ||
		    (r = read_control(s.cgroup, "cpuset.mems", &s.cpuset_mems)) < 0 ||
		    (r = read_control(s.cgroup, "dmem.max", &s.dmem_max)) < 0)
			return r;
	}
	if (s.cgroup_v1) {
		r = read_control(s.cgroup_v1, "devices.list", &list);
		if (r < 0)
			return r;
		for (char *save = NULL, *l = list ? strtok_r(list, "\n", &save) : NULL; l;
		     l = strtok_r(NULL, "\n", &save))
			if (strv_extend(&s.v1_rules, l) < 0)
				return -ENOMEM;
		/* the root's "a *:* rwm" confines nothing */
		if (s.v1_rules && !strv_contains(s.v1_rules, "a *:* rwm") &&
		    s.devices == ENFORCE_DEVICES_NONE)
			s.devices = ENFORCE_DEVICES_V1;
	}
	s.device_memory = device_memory(e, id, s.dmem_max);
	*ret = s;
	s = (struct enforce_status){};
	return 0;
}
