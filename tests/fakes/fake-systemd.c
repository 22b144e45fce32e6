// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A fake systemd manager for the tests of the systemd path of enforcement: owns
 * org.freedesktop.systemd1 on the bus at ADDRESS (a private dbus-daemon) and answers
 * StartTransientUnit, StopUnit and ResetFailedUnit of org.freedesktop.systemd1.Manager as
 * systemd does (a job path, then JobRemoved), recording each call as one JSON line in RECORD:
 *
 *   {"method": "StartTransientUnit", "unit": "xpu-a-....scope", "mode": "fail",
 *    "properties": {"DevicePolicy": {"signature": "s", "value": "closed"}, ...}}
 *
 * The units it holds are listed one per line in RECORD.units (rewritten at each change): a unit
 * goes when the processes of its PIDs are gone (zombies count as gone), when stopped, or when it
 * failed and was reset. Faults, from the one line of RECORD.fault read at each call:
 *   refuse NAME   StartTransientUnit answers InvalidArgs about property NAME
 *   exists        StartTransientUnit answers UnitExists
 *   job-failed    the unit is made, its job ends "failed" (the unit stays failed until reset)
 *   pid-exits     the process of PIDs is killed (SIGKILL) first; then what systemd answers for
 *                 a process it cannot find
 *   no-job        the job never ends (no JobRemoved)
 *   no-such-unit  GetUnit and SetUnitProperties answer NoSuchUnit
 *   refuse NAME   (also) SetUnitProperties answers InvalidArgs about property NAME, if it has it
 *
 * Existing units, for SetUnitProperties: RECORD.existing, a JSON object {UNIT: {PROPERTY:
 * {"signature": S, "value": V}}} the test writes; GetUnit answers for the units it names (else
 * NoSuchUnit), Get of org.freedesktop.DBus.Properties on a unit's object answers its value or
 * systemd's default (DevicePolicy "auto", DeviceAllow empty, MemoryMax and CPUQuotaPerSecUSec
 * infinity, AllowedCPUs and AllowedMemoryNodes empty), and SetUnitProperties applies its
 * properties in order as systemd does (a DeviceAllow list appends, an empty one clears) and
 * writes the file back. The call is recorded with "runtime" and "sequence": [[NAME, SIGNATURE,
 * VALUE], ...] in order.
 * It prints "ready" on stdout once it owns the name, and runs until SIGTERM.
 *
 * Usage: fake-systemd ADDRESS RECORD
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#define MAX_UNITS 64

static const char *record_path;
static char units[MAX_UNITS][256];
static pid_t unit_pids[MAX_UNITS];
static bool unit_failed[MAX_UNITS];
static unsigned next_job = 1;

static bool pid_gone(pid_t pid)
{
	char path[64], buf[512];
	const char *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = 0;
	paren = strrchr(buf, ')');
	return !paren || paren[2] == 'Z' || paren[2] == 'X';
}

static void write_units(void)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s.units", record_path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	for (size_t i = 0; i < MAX_UNITS; i++)
		if (units[i][0])
			fprintf(f, "%s%s\n", units[i], unit_failed[i] ? " failed" : "");
	fclose(f);
	rename(tmp, path);
}

static int find_unit(const char *name)
{
	for (int i = 0; i < MAX_UNITS; i++)
		if (units[i][0] && strcmp(units[i], name) == 0)
			return i;
	return -1;
}

/* Units whose processes are gone: systemd removes an empty scope. */
static void collect(void)
{
	bool changed = false;

	for (size_t i = 0; i < MAX_UNITS; i++)
		if (units[i][0] && !unit_failed[i] && unit_pids[i] > 0 && pid_gone(unit_pids[i])) {
			units[i][0] = 0;
			changed = true;
		}
	if (changed)
		write_units();
}

static void read_fault(char *buf, size_t size)
{
	char path[4096];
	FILE *f;

	buf[0] = 0;
	snprintf(path, sizeof(path), "%s.fault", record_path);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(buf, (int)size, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

static void record(json_t *doc)
{
	char *line = json_dumps(doc, JSON_COMPACT);
	FILE *f = line ? fopen(record_path, "ae") : NULL;

	if (f) {
		fprintf(f, "%s\n", line);
		fclose(f);
	}
	free(line);
}

/* One variant's value as JSON; the message is positioned at the variant. */
static int read_variant(sd_bus_message *m, json_t **ret_sig, json_t **ret_value)
{
	const char *sig;
	json_t *v = NULL;
	int r;

	r = sd_bus_message_peek_type(m, NULL, &sig);
	if (r < 0)
		return r;
	*ret_sig = json_string(sig);
	r = sd_bus_message_enter_container(m, 'v', sig);
	if (r < 0)
		return r;
	if (strcmp(sig, "s") == 0) {
		const char *s;

		r = sd_bus_message_read(m, "s", &s);
		v = json_string(s);
	} else if (strcmp(sig, "t") == 0) {
		uint64_t t;

		r = sd_bus_message_read(m, "t", &t);
		v = json_integer((json_int_t)t);
	} else if (strcmp(sig, "b") == 0) {
		int b;

		r = sd_bus_message_read(m, "b", &b);
		v = json_boolean(b);
	} else if (strcmp(sig, "as") == 0) {
		char **l = NULL;

		r = sd_bus_message_read_strv(m, &l);
		v = json_array();
		for (size_t i = 0; l && l[i]; i++) {
			json_array_append_new(v, json_string(l[i]));
			free(l[i]);
		}
		free(l);
	} else if (strcmp(sig, "a(ss)") == 0) {
		const char *a, *b;

		v = json_array();
		r = sd_bus_message_enter_container(m, 'a', "(ss)");
		while (r >= 0 && (r = sd_bus_message_read(m, "(ss)", &a, &b)) > 0)
			json_array_append_new(v, json_pack("[s, s]", a, b));
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	} else if (strcmp(sig, "ay") == 0) {
		const uint8_t *bytes;
		size_t n;

		r = sd_bus_message_read_array(m, 'y', (const void **)&bytes, &n);
		v = json_array();
		for (size_t i = 0; r >= 0 && i < n; i++)
			json_array_append_new(v, json_integer(bytes[i]));
	} else if (strcmp(sig, "au") == 0) {
		const uint32_t *u;
		size_t n;

		r = sd_bus_message_read_array(m, 'u', (const void **)&u, &n);
		v = json_array();
		for (size_t i = 0; r >= 0 && i < n / sizeof(*u); i++)
			json_array_append_new(v, json_integer(u[i]));
	} else {
		r = sd_bus_message_skip(m, sig);
		v = json_null();
	}
	if (r < 0)
		return r;
	*ret_value = v;
	return sd_bus_message_exit_container(m);
}

static int emit_job_removed(sd_bus *bus, unsigned id, const char *unit, const char *result)
{
	char path[128];

	snprintf(path, sizeof(path), "/org/freedesktop/systemd1/job/%u", id);
	return sd_bus_emit_signal(bus, "/org/freedesktop/systemd1",
				  "org.freedesktop.systemd1.Manager", "JobRemoved", "uoss", id,
				  path, unit, result);
}

static int reply_job(sd_bus_message *m, unsigned id)
{
	char path[128];

	snprintf(path, sizeof(path), "/org/freedesktop/systemd1/job/%u", id);
	return sd_bus_reply_method_return(m, "o", path);
}

/*
 * An a(sv) of properties into @props (name: signature and value; the last of a name), and into
 * @seq, where not NULL, each in order as [name, signature, value]; the process of PIDs.
 */
static int read_props(sd_bus_message *m, json_t *props, json_t *seq, pid_t *pid)
{
	const char *name;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "(sv)");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'r', "sv")) > 0) {
		json_t *sig = NULL, *value = NULL;

		r = sd_bus_message_read(m, "s", &name);
		if (r >= 0)
			r = read_variant(m, &sig, &value);
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
		if (strcmp(name, "PIDs") == 0 && json_array_size(value) > 0)
			*pid = (pid_t)json_integer_value(json_array_get(value, 0));
		if (seq)
			json_array_append_new(seq, json_pack("[s, O, O]", name, sig, value));
		json_object_set_new(props, name,
				    json_pack("{s:o, s:o}", "signature", sig, "value", value));
	}
	return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int method_start(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	sd_bus *bus = sd_bus_message_get_bus(m);
	json_t *doc, *props = json_object();
	const char *unit, *mode;
	char fault[256];
	pid_t pid = 0;
	unsigned id;
	int r, slot;

	(void)userdata;
	collect();
	read_fault(fault, sizeof(fault));
	r = sd_bus_message_read(m, "ss", &unit, &mode);
	if (r >= 0)
		r = read_props(m, props, NULL, &pid);
	if (r < 0) {
		json_decref(props);
		return r;
	}
	doc = json_pack("{s:s, s:s, s:s, s:o, s:s}", "method", "StartTransientUnit", "unit", unit,
			"mode", mode, "properties", props, "fault", fault);
	record(doc);
	json_decref(doc);

	if (strncmp(fault, "refuse ", 7) == 0)
		return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.InvalidArgs",
					 "Cannot set property %s, or unknown property.", fault + 7);
	if (strcmp(fault, "exists") == 0 || find_unit(unit) >= 0)
		return sd_bus_error_setf(error, "org.freedesktop.systemd1.UnitExists",
					 "Unit %s was already loaded or has a fragment file.",
					 unit);
	if (strcmp(fault, "pid-exits") == 0 && pid > 0) {
		kill(pid, SIGKILL);
		for (int i = 0; i < 200 && !pid_gone(pid); i++)
			usleep(10000);
	}
	if (pid > 0 && pid_gone(pid))
		return sd_bus_error_set_errnof(error, ESRCH,
					       "Failed to add PID "
					       "%d"
					       " to scope: No such process",
					       (int)pid);
	slot = -1;
	for (int i = 0; i < MAX_UNITS && slot < 0; i++)
		if (!units[i][0])
			slot = i;
	if (slot < 0)
		return sd_bus_error_set_errno(error, ENOSPC);
	snprintf(units[slot], sizeof(units[slot]), "%s", unit);
	unit_pids[slot] = pid;
	unit_failed[slot] = strcmp(fault, "job-failed") == 0;
	write_units();
	id = next_job++;
	r = reply_job(m, id);
	if (r < 0 || strcmp(fault, "no-job") == 0)
		return r;
	return emit_job_removed(bus, id, unit, unit_failed[slot] ? "failed" : "done");
}

/* ---- existing units: RECORD.existing, {unit: {property: {"signature", "value"}}} ---------- */

static json_t *existing_load(void)
{
	char path[4096];
	json_t *doc;

	snprintf(path, sizeof(path), "%s.existing", record_path);
	doc = json_load_file(path, 0, NULL);
	return json_is_object(doc) ? doc : (json_decref(doc), json_object());
}

static void existing_save(json_t *doc)
{
	char path[4096], tmp[4200];

	snprintf(path, sizeof(path), "%s.existing", record_path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(doc, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) == 0)
		rename(tmp, path);
}

/* A unit's object path as systemd escapes it: each byte not [A-Za-z0-9] as _xx. */
static void unit_object_path(const char *unit, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "/org/freedesktop/systemd1/unit/");

	for (const unsigned char *c = (const unsigned char *)unit; *c && n + 4 < size; c++)
		n += (size_t)snprintf(buf + n, size - n,
				      ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				       (*c >= '0' && *c <= '9'))
					      ? "%c"
					      : "_%02x",
				      *c);
}

/* What systemd reports for a property nobody set. */
static json_t *property_default(const char *name)
{
	if (strcmp(name, "DevicePolicy") == 0)
		return json_pack("{s:s, s:s}", "signature", "s", "value", "auto");
	if (strcmp(name, "DeviceAllow") == 0)
		return json_pack("{s:s, s:[]}", "signature", "a(ss)", "value");
	if (strcmp(name, "MemoryMax") == 0 || strcmp(name, "CPUQuotaPerSecUSec") == 0)
		return json_pack("{s:s, s:I}", "signature", "t", "value", (json_int_t)-1);
	if (strcmp(name, "AllowedCPUs") == 0 || strcmp(name, "AllowedMemoryNodes") == 0)
		return json_pack("{s:s, s:[]}", "signature", "ay", "value");
	return NULL;
}

static int method_get_unit(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	json_t *existing = existing_load();
	const char *unit;
	char path[1024], fault[256];
	bool known;
	int r;

	(void)userdata;
	read_fault(fault, sizeof(fault));
	r = sd_bus_message_read(m, "s", &unit);
	if (r < 0) {
		json_decref(existing);
		return r;
	}
	known = json_object_get(existing, unit) && strcmp(fault, "no-such-unit") != 0;
	json_decref(existing);
	if (!known)
		return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit",
					 "Unit %s not loaded.", unit);
	unit_object_path(unit, path, sizeof(path));
	return sd_bus_reply_method_return(m, "o", path);
}

static int append_value(sd_bus_message *reply, const char *sig, json_t *value)
{
	size_t i;
	json_t *v;
	int r;

	if (strcmp(sig, "s") == 0)
		return sd_bus_message_append(reply, "s", json_string_value(value) ?: "");
	if (strcmp(sig, "t") == 0)
		return sd_bus_message_append(reply, "t", (uint64_t)json_integer_value(value));
	if (strcmp(sig, "ay") == 0) {
		uint8_t bytes[256];
		size_t n = 0;

		json_array_foreach(value, i, v)
			if (n < sizeof(bytes))
				bytes[n++] = (uint8_t)json_integer_value(v);
		return sd_bus_message_append_array(reply, 'y', bytes, n);
	}
	r = sd_bus_message_open_container(reply, 'a', "(ss)");
	json_array_foreach(value, i, v)
		if (r >= 0)
			r = sd_bus_message_append(reply, "(ss)",
						  json_string_value(json_array_get(v, 0)) ?: "",
						  json_string_value(json_array_get(v, 1)) ?: "");
	return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* org.freedesktop.DBus.Properties.Get on a unit's object; anything else is not answered here. */
static int on_unit_object(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	sd_bus_message *reply = NULL;
	json_t *existing, *unit_props = NULL, *prop = NULL, *def = NULL;
	const char *iface, *name, *key, *sig;
	char path[1024];
	json_t *value;
	int r;

	(void)userdata;
	if (!sd_bus_message_is_method_call(m, "org.freedesktop.DBus.Properties", "Get"))
		return 0;
	r = sd_bus_message_read(m, "ss", &iface, &name);
	if (r < 0)
		return r;
	existing = existing_load();
	json_object_foreach(existing, key, value) {
		unit_object_path(key, path, sizeof(path));
		if (strcmp(path, sd_bus_message_get_path(m)) == 0)
			unit_props = value;
	}
	if (unit_props)
		prop = json_object_get(unit_props, name);
	if (unit_props && !prop)
		prop = def = property_default(name);
	if (!prop) {
		json_decref(existing);
		return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.UnknownProperty",
					 "Unknown property %s of %s.", name, iface);
	}
	sig = json_string_value(json_object_get(prop, "signature"));
	r = sd_bus_message_new_method_return(m, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'v', sig);
	if (r >= 0)
		r = append_value(reply, sig, json_object_get(prop, "value"));
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	if (r >= 0)
		r = sd_bus_send(NULL, reply, NULL);
	sd_bus_message_unref(reply);
	json_decref(def);
	json_decref(existing);
	return r < 0 ? r : 1;
}

/* SetUnitProperties as systemd applies it: DeviceAllow= appends, an empty one clears. */
static void apply(json_t *props, json_t *seq)
{
	size_t i;
	json_t *item;

	json_array_foreach(seq, i, item) {
		const char *name = json_string_value(json_array_get(item, 0));
		json_t *sig = json_array_get(item, 1), *value = json_array_get(item, 2);
		json_t *old = json_object_get(props, name);

		if (strcmp(name, "DeviceAllow") == 0 && old && json_array_size(value) > 0) {
			json_array_extend(json_object_get(old, "value"), value);
			continue;
		}
		json_object_set_new(props, name,
				    json_pack("{s:O, s:O}", "signature", sig, "value", value));
	}
}

/* SetUnitProperties: recorded, and applied to the unit in RECORD.existing (to one of its own
 * scopes: recorded only). */
static int method_set(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	json_t *doc, *props = json_object(), *seq = json_array(), *existing, *unit_props;
	const char *unit;
	char fault[256];
	pid_t pid = 0;
	int runtime, r;

	(void)userdata;
	read_fault(fault, sizeof(fault));
	r = sd_bus_message_read(m, "sb", &unit, &runtime);
	if (r >= 0)
		r = read_props(m, props, seq, &pid);
	if (r < 0) {
		json_decref(props);
		json_decref(seq);
		return r;
	}
	doc = json_pack("{s:s, s:s, s:b, s:o, s:o, s:s}", "method", "SetUnitProperties", "unit",
			unit, "runtime", runtime, "properties", props, "sequence", seq, "fault",
			fault);
	record(doc);
	existing = existing_load();
	unit_props = json_object_get(existing, unit);
	if (!unit_props && find_unit(unit) >= 0 && strcmp(fault, "no-such-unit") != 0)
		/* a unit of its own (a scope): recorded only */
		r = sd_bus_reply_method_return(m, NULL);
	else if (!unit_props || strcmp(fault, "no-such-unit") == 0)
		r = sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit",
				      "Unit %s not loaded.", unit);
	else if (strncmp(fault, "refuse ", 7) == 0 && json_object_get(props, fault + 7))
		r = sd_bus_error_setf(error, "org.freedesktop.DBus.Error.InvalidArgs",
				      "Cannot set property %s, or unknown property.", fault + 7);
	else {
		apply(unit_props, seq);
		existing_save(existing);
		r = sd_bus_reply_method_return(m, NULL);
	}
	json_decref(existing);
	json_decref(doc);
	return r;
}

/* Records a call about @unit: the unit's slot, or the error that it has none. */
static int record_unit_call(const char *method, const char *unit, const char *mode,
			    sd_bus_error *error)
{
	json_t *doc = json_pack("{s:s, s:s, s:s?}", "method", method, "unit", unit, "mode", mode);
	int i;

	record(doc);
	json_decref(doc);
	i = find_unit(unit);
	if (i < 0)
		return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit",
					 "Unit %s not loaded.", unit);
	return i;
}

static int method_stop(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *unit, *mode;
	unsigned id;
	int r, i;

	(void)userdata;
	r = sd_bus_message_read(m, "ss", &unit, &mode);
	if (r < 0)
		return r;
	i = record_unit_call("StopUnit", unit, mode, error);
	if (i < 0)
		return i;
	if (!unit_failed[i])
		units[i][0] = 0;
	write_units();
	id = next_job++;
	r = reply_job(m, id);
	if (r < 0)
		return r;
	return emit_job_removed(sd_bus_message_get_bus(m), id, unit, "done");
}

static int method_reset_failed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *unit;
	int r, i;

	(void)userdata;
	r = sd_bus_message_read(m, "s", &unit);
	if (r < 0)
		return r;
	i = record_unit_call("ResetFailedUnit", unit, NULL, error);
	if (i < 0)
		return i;
	units[i][0] = 0;
	write_units();
	return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable manager_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("StartTransientUnit", "ssa(sv)a(sa(sv))", "o", method_start,
		  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("SetUnitProperties", "sba(sv)", NULL, method_set, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("GetUnit", "s", "o", method_get_unit, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("StopUnit", "ss", "o", method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("ResetFailedUnit", "s", NULL, method_reset_failed, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL("JobRemoved", "uoss", 0),
    SD_BUS_VTABLE_END};

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)userdata;
	collect();
	if (sd_event_source_set_time(s, usec + 50000) < 0)
		return -EIO;
	return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

int main(int argc, char *argv[])
{
	sd_event *event = NULL;
	sd_bus *bus = NULL;
	sigset_t mask;
	uint64_t now;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: fake-systemd ADDRESS RECORD\n");
		return 2;
	}
	record_path = argv[2];
	write_units();
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	r = sd_event_default(&event);
	if (r >= 0)
		r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
	if (r >= 0)
		r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
	if (r >= 0)
		r = sd_event_now(event, CLOCK_MONOTONIC, &now);
	if (r >= 0)
		r = sd_event_add_time(event, NULL, CLOCK_MONOTONIC, now + 50000, 0, on_timer, NULL);
	if (r >= 0)
		r = sd_bus_new(&bus);
	if (r >= 0)
		r = sd_bus_set_address(bus, argv[1]);
	if (r >= 0)
		r = sd_bus_set_bus_client(bus, 1);
	if (r >= 0)
		r = sd_bus_start(bus);
	if (r >= 0)
		r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/systemd1",
					     "org.freedesktop.systemd1.Manager", manager_vtable,
					     NULL);
	if (r >= 0)
		r = sd_bus_add_fallback(bus, NULL, "/org/freedesktop/systemd1/unit", on_unit_object,
					NULL);
	if (r >= 0)
		r = sd_bus_request_name(bus, "org.freedesktop.systemd1", 0);
	if (r >= 0)
		r = sd_bus_attach_event(bus, event, 0);
	if (r < 0) {
		fprintf(stderr, "fake-systemd: %s\n", strerror(-r));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	r = sd_event_loop(event);
	sd_bus_flush_close_unref(bus);
	sd_event_unref(event);
	return r < 0 ? 1 : 0;
}
