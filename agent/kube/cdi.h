/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Container Device Interface (CDI) spec files: one JSON spec per kind of device that has
 * slices ("xpu.dev/gpu", "xpu.dev/accel", "xpu.dev/fpga"), one CDI device per slice with the
 * slice's device nodes and environment, so that a container runtime given the CDI names of a
 * grant (the local API's "cdi_devices", the device plugin's CDIDevices) injects exactly those
 * slices. The document builder is pure; the writer keeps the files in a directory
 * (/var/run/cdi) up to date from the daemon's loop.
 */
#pragma once

#include <jansson.h>
#include <systemd/sd-event.h>

#include "core/device.h"
#include "core/grant.h"
#include "core/inventory.h"
#include "core/plan.h"
#include "shared/macro.h"

#define CDI_DEFAULT_DIR "/var/run/cdi"

/* The file name of @kind's spec ("xpu.dev-gpu.json"), static. */
const char *cdi_spec_file_name(enum xpu_kind kind);

/*
 * The lowest cdiVersion whose features the CDI spec document @spec uses, by the rules of the
 * CDI project's own MinimumRequiredVersion: "0.3.0" at least; "0.4.0" for a mount with a
 * "type"; "0.5.0" for a device name that does not start with an ASCII letter or a device node
 * with a "hostPath"; "0.6.0" for annotations (of the spec or of a device) or a '.' in the
 * kind's class; "0.7.0" for "intelRdt" or "additionalGids" in containerEdits (of the spec or of
 * a device). A runtime refuses a whole file whose version it does not know (podman 4.3 knows
 * up to 0.5.0), so a spec claims no more than it needs. Static string. Pure.
 */
const char *cdi_minimum_version(const json_t *spec);

/*
 * The CDI spec of every slice in @slices whose device (in @devs) is of @kind: a new reference
 * in *ret, or NULL when there is none (the spec file should not exist). Slices with neither
 * device nodes nor environment are left out: CDI refuses devices without edits. With a host
 * @root other than "/" (--root, --simulate) each device node also has a "hostPath", the node
 * below @root, where a runtime on this machine finds it; NULL or "/" on a real host. The
 * cdiVersion is cdi_minimum_version() of the result. Pure. 0 or -ENOMEM.
 */
int cdi_build_spec(enum xpu_kind kind, const char *root, const struct device_list *devs,
		   const struct slice_list *slices, json_t **ret);

struct cdi_writer;

/*
 * Writes the specs of @inv's slices into @dir (created if missing) now and after every change
 * (cdi_writer_changed(), a new inventory generation), coalesced to once per loop iteration,
 * each file atomically and only when its content changed; removes the spec of a kind that no
 * longer has slices. A directory that cannot be written is a warning, not an error: xpud goes
 * on. @root (the host's, copied) as for cdi_build_spec(). @inv is borrowed and must
 * outlive the writer. Logs. 0 or -ENOMEM / -errno of sd-event.
 */
int cdi_writer_new(sd_event *e, const char *dir, const char *root, struct inventory *inv,
		   struct cdi_writer **ret);
/* Accepts NULL, returns NULL. Leaves the files: containers may still start with them. */
struct cdi_writer *cdi_writer_free(struct cdi_writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cdi_writer *, cdi_writer_free);
/* Something in the inventory changed: the specs are checked before the loop sleeps again. */
void cdi_writer_changed(struct cdi_writer *w);
