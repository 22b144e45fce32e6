// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fixture builder's NVIDIA parts: the driver's /proc files, a GPU's information file and
 * nodes, the fake NVML library's description, and the MIG capabilities of its instances.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fileio.h"
#include "shared/parse.h"
#include "sim/fixture-internal.h"

int build_nvidia_driver(struct fixture *fx, json_t *drv)
{
	static const char *const keys[] = { "version", NULL };
	int r;

	fx->driver_version = NULL;
	if (!drv)
		return 0;
	r = check_keys(fx, drv, "nvidia_driver", keys);
	if (r < 0)
		return r;
	r = get_string(fx, drv, "nvidia_driver", "version", true, &fx->driver_version);
	if (r < 0)
		return r;
	if (!string_is_printable(fx->driver_version))
		return fx_invalid(fx, "nvidia_driver.version: must be one line of printable text");

	r = fx_attrf(fx, "proc/driver/nvidia", "version",
		     "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  %s  Release Build  "
		     "(dvs-builder@U22-I3-AE18-23-3)  Thu Jan 1 00:00:00 UTC 2026\n"
		     "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n",
		     fx->driver_version);
	if (r >= 0)
		r = fx_mkdir(fx, "proc/driver/nvidia/gpus");
	/* Present whenever the driver is loaded: the MIG capabilities behind /dev/nvidia-caps. */
	if (r >= 0)
		r = fx_attrf(fx, "proc/driver/nvidia/capabilities/mig", "config",
			     "DeviceFileMinor: 1\nDeviceFileMode: 256\nDeviceFileModify: 1\n");
	if (r >= 0)
		r = fx_attrf(fx, "proc/driver/nvidia/capabilities/mig", "monitor",
			     "DeviceFileMinor: 2\nDeviceFileMode: 292\nDeviceFileModify: 1\n");
	return r;
}

/*
 * The fake NVML library's description (tests/fakes/README.md), written compactly to
 * run/fake-nvml.json. Its contents are the fake's to validate; a new file replaces the old one
 * with a rename, so a library reading it never sees half of it.
 */
int build_fake_nvml(struct fixture *fx, json_t *nvml)
{
	static const char path[] = "run/fake-nvml.json", tmp[] = "run/.fake-nvml.json.tmp";
	_cleanup_free_ char *text = NULL;
	int r;

	if (!nvml || fx_validating(fx))
		return 0;
	text = json_dumps(nvml, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	r = fx_write(fx, tmp, text, strlen(text));
	if (r < 0)
		return r;
	if (renameat(fx->root, tmp, fx->root, path) < 0)
		return fx_fs_error(fx, -errno, "replace", path);
	return 0;
}

/* @partial: a "defaults" block, where nothing is required yet. */
int build_nvidia_gpu(struct fixture *fx, const struct pci_function *f, json_t *obj,
			    const char *where, bool partial)
{
	static const char *const keys[] = { "minor", "model",	  "uuid",     "vbios",
					    "irq",   "firmware", "excluded", NULL };
	_cleanup_free_ char *dir = NULL, *node = NULL, *caps = NULL;
	const char *model = NULL, *uuid = NULL, *vbios = NULL, *firmware = NULL;
	struct nvidia_gpu *gpus;
	char sub[WHERE_MAX];
	int minor, irq, r;
	json_t *excluded;

	if (!obj)
		return 0;
	snprintf(sub, sizeof(sub), "%s.nvidia", where);
	r = check_keys(fx, obj, sub, keys);
	if (r >= 0)
		r = get_int(fx, obj, sub, "minor", !partial, 0, NVIDIA_MINORS - 1, -1, &minor);
	if (r >= 0)
		r = get_string(fx, obj, sub, "model", !partial, &model);
	if (r >= 0)
		r = get_string(fx, obj, sub, "uuid", !partial, &uuid);
	if (r >= 0)
		r = get_string(fx, obj, sub, "vbios", false, &vbios);
	if (r >= 0)
		r = get_string(fx, obj, sub, "firmware", false, &firmware);
	if (r >= 0)
		r = get_int(fx, obj, sub, "irq", false, 0, INT_MAX, 0, &irq);
	if (r < 0)
		return r;
	excluded = get_value(obj, "excluded");
	if (excluded && !json_is_boolean(excluded))
		return fx_bad_key(fx, sub, "excluded", "expected boolean");
	if ((model && !string_is_printable(model)) || (uuid && !string_is_printable(uuid)) ||
	    (vbios && !string_is_printable(vbios)) || (firmware && !string_is_printable(firmware)))
		return fx_invalid(fx, "%s: model, uuid, vbios and firmware must be one line of "
				      "printable text", sub);
	if (partial)
		return 0;
	if (bit_test(fx->nvidia_minors, (unsigned)minor))
		return fx_invalid(fx, "%s.minor: minor %d is used twice", sub, minor);
	fx->nvidia_minors[minor / 64] |= UINT64_C(1) << (minor % 64);
	gpus = reallocarray(fx->gpus, fx->n_gpus + 1, sizeof(*gpus));
	if (!gpus)
		return -ENOMEM;
	fx->gpus = gpus;
	strcpy(fx->gpus[fx->n_gpus].address, f->address);
	fx->gpus[fx->n_gpus++].minor = minor;
	if (!f->path)
		return 0;

	dir = pathf("proc/driver/nvidia/gpus/%s", f->address);
	node = pathf("dev/nvidia%d", minor);
	caps = pathf("proc/driver/nvidia/capabilities/gpu%d/mig", minor);
	if (!dir || !node || !caps)
		return -ENOMEM;
	/* The layout of the driver's own file, tabs and all. */
	r = fx_attrf(fx, dir, "information",
		     "Model: \t\t %s\n"
		     "IRQ:   \t\t %d\n"
		     "GPU UUID: \t %s\n"
		     "Video BIOS: \t %s\n"
		     "Bus Type: \t PCIe\n"
		     "DMA Size: \t 52 bits\n"
		     "DMA Mask: \t 0xfffffffffffff\n"
		     "Bus Location: \t %s\n"
		     "Device Minor: \t %d\n"
		     "GPU Firmware: \t %s\n"
		     "GPU Excluded:\t %s\n",
		     model, irq, uuid, vbios ?: "N/A", f->address, minor, firmware ?: fx->driver_version ?: "N/A",
		     json_is_true(excluded) ? "Yes" : "No");
	if (r >= 0)
		r = fx_write(fx, node, "", 0);
	if (r >= 0)
		r = fx_mkdir(fx, caps);
	return r;
}

/* ---- MIG capabilities ----------------------------------------------------------------------- */

/*
 * The nvidia-caps minor of GPU instance @gi of the GPU with nvidia minor @gpu_minor (@ci < 0), or
 * of its compute instance @ci. Ours, not the driver's table: 1 and 2 are mig/config and
 * mig/monitor, then each GPU minor has 15 * 9 minors, each GPU instance id 9 of them: its own
 * access, then one per compute instance id. Unique within a node, at most 34427.
 */
static int mig_cap_minor(int gpu_minor, int gi, int ci)
{
	return 3 + (gpu_minor * MIG_GI_IDS + gi) * (1 + MIG_CI_IDS) + 1 + ci;
}

/* "access" of a capability: read-only for all (292 is 0444), changeable by nvidia-modprobe. */
static int write_mig_cap(struct fixture *fx, const char *dir, int minor)
{
	_cleanup_free_ char *node = pathf("dev/nvidia-caps/nvidia-cap%d", minor);
	int r;

	r = fx_attrf(fx, dir, "access", "DeviceFileMinor: %d\nDeviceFileMode: 292\n"
		     "DeviceFileModify: 1\n", minor);
	return r < 0 ? r : fx_write(fx, node, "", 0);
}

/* The nvidia minor of the GPU at @address: from this description's pci entries, else the tree's. */
static int gpu_minor(struct fixture *fx, const char *address)
{
	static const char key[] = "\nDevice Minor:";
	_cleanup_free_ char *path = NULL, *info = NULL;
	char *v;
	int minor;

	for (size_t i = 0; i < fx->n_gpus; i++)
		if (streq(fx->gpus[i].address, address))
			return fx->gpus[i].minor;
	path = pathf("proc/driver/nvidia/gpus/%s/information", address);
	if (!path)
		return -ENOMEM;
	if (fx->tree < 0 || read_attr_at(fx->tree, path, 0, &info) < 0)
		return -ENOENT;
	v = strstr(info, key);
	if (!v)
		return -ENOENT;
	v += strlen(key);
	v += strspn(v, " \t");
	v[strcspn(v, "\n")] = '\0';
	if (safe_atoi(v, &minor) < 0 || minor < 0 || minor >= (int)NVIDIA_MINORS)
		return -ENOENT;
	return minor;
}

/* Removes the GPU instances of capabilities/gpu<minor>/mig/ that an earlier build wrote. */
static int remove_mig_instances(struct fixture *fx, int minor)
{
	_cleanup_free_ char *mig = pathf("proc/driver/nvidia/capabilities/gpu%d/mig", minor);
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r;

	if (fx_validating(fx))
		return 0;
	if (!mig)
		return -ENOMEM;
	r = opendir_at(fx->root, mig, &d);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return fx_fs_error(fx, r, "open", mig);
	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *path = NULL;

		if (strncmp(de->d_name, "gi", 2) != 0)
			continue;
		path = pathf("%s/%s/%s", fx->dir, mig, de->d_name);
		if (!path)
			return -ENOMEM;
		r = fixture_destroy(path);
		if (r < 0)
			return fx_fs_error(fx, r, "remove", path);
	}
	return errno > 0 ? fx_fs_error(fx, -errno, "read", mig) : 0;
}

/*
 * One GPU of nvml.gpus: with "mig" given, its GPU instances below capabilities/gpu<minor>/mig/
 * are replaced by those of "mig_instances" when "current" is true (none otherwise), with the
 * fake's ids: "gi" and "ci" of an object, else position + 1 and 0. Only the keys used here are
 * checked; the rest is the fake's to judge. Sets *ret_written when it wrote a capability.
 */
static int build_gpu_mig(struct fixture *fx, json_t *g, const char *where, bool *ret_written)
{
	json_t *mig = NULL, *current, *list = NULL, *e;
	const char *bus_id = NULL;
	uint16_t gi_seen = 0;
	char address[13], sub[WHERE_MAX];
	int minor, r;
	size_t i;

	if (!json_is_object(g))
		return fx_invalid(fx, "%s: expected object", where);
	r = get_object(fx, g, where, "mig", &mig);
	if (r >= 0)
		r = get_array(fx, g, where, "mig_instances", &list);
	if (r >= 0)
		r = get_string(fx, g, where, "bus_id", true, &bus_id);
	if (r < 0 || !mig)
		return r;
	snprintf(sub, sizeof(sub), "%s.bus_id", where);
	r = parse_address(fx, bus_id, sub, address);
	if (r < 0)
		return r;
	current = json_object_get(mig, "current");
	if (!json_is_boolean(current))
		return fx_invalid(fx, "%s.mig.current: expected boolean", where);
	if (!json_is_true(current))
		list = NULL;

	minor = gpu_minor(fx, address);
	if (minor == -ENOMEM)
		return minor;
	if (minor < 0 && json_array_size(list) > 0)
		return fx_invalid(fx, "%s.bus_id: %s is no GPU of the tree (a pci entry with an "
				  "\"nvidia\" block)", where, address);
	if (minor < 0)
		return 0;
	r = remove_mig_instances(fx, minor);
	if (r < 0)
		return r;

	json_array_foreach(list, i, e) {
		_cleanup_free_ char *gi_dir = NULL, *ci_dir = NULL;
		int gi = (int)i + 1, ci = 0;

		snprintf(sub, sizeof(sub), "%s.mig_instances[%zu]", where, i);
		if (json_is_object(e)) {
			r = get_int(fx, e, sub, "gi", false, 0, MIG_GI_IDS - 1, gi, &gi);
			if (r >= 0)
				r = get_int(fx, e, sub, "ci", false, 0, MIG_CI_IDS - 1, 0, &ci);
			if (r < 0)
				return r;
		} else if (!json_is_integer(e)) {
			return fx_invalid(fx, "%s: expected a profile id or an object", sub);
		}
		if (gi >= MIG_GI_IDS)
			return fx_invalid(fx, "%s: no GPU instance id left", sub);
		if (gi_seen & (1u << gi))
			return fx_invalid(fx, "%s: GPU instance id %d is used twice", sub, gi);
		gi_seen |= 1u << gi;

		gi_dir = pathf("proc/driver/nvidia/capabilities/gpu%d/mig/gi%d", minor, gi);
		ci_dir = pathf("%s/ci%d", gi_dir, ci);
		if (!gi_dir || !ci_dir)
			return -ENOMEM;
		r = write_mig_cap(fx, gi_dir, mig_cap_minor(minor, gi, -1));
		if (r >= 0)
			r = write_mig_cap(fx, ci_dir, mig_cap_minor(minor, gi, ci));
		if (r < 0)
			return r;
		*ret_written = true;
	}
	return 0;
}

/*
 * The capability files that the NVIDIA driver shows for the MIG instances of the "nvml" block's
 * GPUs, which the backend reads to find a MIG device's /dev/nvidia-caps nodes: per instance
 * gpu<minor>/mig/gi<G>/access and gi<G>/ci<C>/access, and their dev/nvidia-caps/nvidia-cap<N>.
 * With any of them, mig/config and mig/monitor (minors 1 and 2) as well, unless already there.
 */
int build_mig_capabilities(struct fixture *fx, json_t *nvml)
{
	static const struct {
		const char *name, *mode;
		int minor;
	} global[] = { { "config", "256", 1 }, { "monitor", "292", 2 } };
	json_t *gpus = NULL, *g;
	bool written = false;
	size_t i;
	int r;

	fx->device[0] = '\0';
	if (!nvml)
		return 0;
	r = get_array(fx, nvml, "nvml", "gpus", &gpus);
	if (r < 0)
		return r;
	json_array_foreach(gpus, i, g) {
		char where[32];

		snprintf(where, sizeof(where), "nvml.gpus[%zu]", i);
		r = build_gpu_mig(fx, g, where, &written);
		if (r < 0)
			return r;
	}
	for (i = 0; written && i < ELEMENTSOF(global); i++) {
		_cleanup_free_ char *path = NULL, *node = NULL;

		path = pathf("proc/driver/nvidia/capabilities/mig/%s", global[i].name);
		node = pathf("dev/nvidia-caps/nvidia-cap%d", global[i].minor);
		if (!path || !node)
			return -ENOMEM;
		if (!exists_at(fx->root, path))
			r = fx_attrf(fx, "proc/driver/nvidia/capabilities/mig", global[i].name,
				     "DeviceFileMinor: %d\nDeviceFileMode: %s\n"
				     "DeviceFileModify: 1\n", global[i].minor, global[i].mode);
		if (r >= 0 && !exists_at(fx->root, node))
			r = fx_write(fx, node, "", 0);
		if (r < 0)
			return r;
	}
	return 0;
}

