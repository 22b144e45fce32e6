// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * XRT in the helper: the shim's C API (runtimes/xilinx-xrt.h), loaded with dlopen, asked for
 * every device it counts, and the answer written as helper protocol messages.
 *
 * Under software emulation (XCL_EMULATION_MODE=sw_emu) the devices are the ones the emconfig.json
 * in EMCONFIG_PATH declares. XRT 2.13 reads that file with an exception-throwing parser nobody
 * catches (a broken file aborts the process) and makes up a default device when it declares none
 * or is missing, so the helper reads it first: a file that is missing or not JSON is this
 * helper's clear error, and the count it declares bounds the devices asked for. xclOpen() is
 * never called past xclProbe()'s count (the emulation library answers such an index with a
 * made-up device too). Emulated devices have no PCI function: their ids are "xrt-<index>".
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/helper-proto.h"
#include "runtimes/xilinx-xrt.h"
#include "runtimes/xrt.h"
#include "shared/dlopen-util.h"
#include "shared/macro.h"
#include "shared/parse.h"
#include "shared/strv.h"

struct xrt_api {
	void *dl;
	typeof(xclProbe) *probe;
	typeof(xclOpen) *open;
	typeof(xclClose) *close;
	typeof(xclGetDeviceInfo2) *info;
	typeof(xclGetUsageInfo) *usage; /* optional: not in the emulation library */
	typeof(xclGetSectionInfo) *section; /* optional */
};

/* A JSON number or a string of digits (boost's parser gives XRT both as text); @def if absent. */
static int emconfig_count(const json_t *o, const char *key, unsigned def, unsigned *ret)
{
	const json_t *v = json_object_get(o, key);

	if (!v) {
		*ret = def;
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 1024) {
		*ret = (unsigned)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && safe_atou(json_string_value(v), ret) >= 0 && *ret <= 1024)
		return 0;
	return -EBADMSG;
}

/*
 * How many devices EMCONFIG_PATH/emconfig.json declares: the sum over Platform.Boards of
 * NumBoards times the NumDevices of each of its Devices (each 1 when not given), as XRT's
 * emulation config reader counts. 0, or -errno with a one-line reason.
 */
static int emconfig_devices(unsigned *ret, bool *ret_unavailable, char **ret_reason)
{
	const char *dir = secure_getenv(XRT_EMCONFIG_ENV);
	_cleanup_free_ char *path = NULL;
	const json_t *version, *boards, *board;
	json_error_t jerr;
	json_t *doc;
	unsigned total = 0;
	size_t i;

	*ret_unavailable = false;
	if (!dir || !*dir) {
		*ret_unavailable = true;
		return asprintf(ret_reason, "XRT software emulation needs %s: the directory of an "
					    "emconfig.json", XRT_EMCONFIG_ENV) < 0 ? -ENOMEM : -ENOENT;
	}
	if (asprintf(&path, "%s/emconfig.json", dir) < 0)
		return -ENOMEM;
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		bool missing = json_error_code(&jerr) == json_error_cannot_open_file;

		*ret_unavailable = missing;
		if (missing)
			return asprintf(ret_reason, "XRT software emulation: %s: %s", path,
					jerr.text) < 0 ? -ENOMEM : -ENOENT;
		return asprintf(ret_reason, "XRT software emulation: %s: not JSON: line %d: %s",
				path, jerr.line, jerr.text) < 0 ? -ENOMEM : -EBADMSG;
	}
	version = json_object_get(json_object_get(doc, "Version"), "FileVersion");
	if (version && !(json_is_string(version) && streq(json_string_value(version), "2.0"))) {
		json_decref(doc);
		return asprintf(ret_reason, "XRT software emulation: %s: Version.FileVersion is "
					    "not \"2.0\", the only one XRT reads", path) < 0
			       ? -ENOMEM
			       : -EBADMSG;
	}
	boards = json_object_get(json_object_get(doc, "Platform"), "Boards");
	json_array_foreach(boards, i, board) {
		const json_t *devices = json_object_get(board, "Devices"), *dev;
		unsigned n_boards, n_devices, per_board = 0;
		size_t j;

		if (emconfig_count(board, "NumBoards", 1, &n_boards) < 0)
			goto bad;
		json_array_foreach(devices, j, dev) {
			if (emconfig_count(dev, "NumDevices", 1, &n_devices) < 0)
				goto bad;
			per_board += n_devices;
		}
		total += n_boards * per_board;
		if (total > XRT_MAX_DEVICES)
			total = XRT_MAX_DEVICES;
	}
	json_decref(doc);
	*ret = total;
	return 0;
bad:
	json_decref(doc);
	return asprintf(ret_reason, "XRT software emulation: %s: Platform.Boards[%zu]: a count "
				    "that is not a number from 0 to 1024", path, i) < 0
		       ? -ENOMEM
		       : -EBADMSG;
}

/* A NUL-terminated, printable copy of a fixed-size field, or NULL when it is empty or not. */
static char *field_string(const char *field, size_t size)
{
	char *s = strndup(field, size);

	if (s && (!*s || !string_is_printable(s)))
		s = mfree(s);
	return s;
}

/*
 * AMD/Xilinx's own device plugin (FPGA_as_a_Service, k8s-fpga-device-plugin) names a card's
 * resource "xilinx.com/fpga-<shell>-<shell timestamp>": one resource per kind of shell, so that
 * a pod asks for the shell its xclbin was built for. The same names, where they are valid ones.
 */
static char *resource_name(const char *shell, unsigned long long timestamp)
{
	char buf[128], *name;
	size_t n;

	if (timestamp)
		snprintf(buf, sizeof(buf), "xilinx.com/fpga-%s-%llu", shell ?: "unknown", timestamp);
	else
		snprintf(buf, sizeof(buf), "xilinx.com/fpga-%s", shell ?: "unknown");
	name = strchr(buf, '/') + 1;
	for (char *p = name; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
			*p = '_';
	n = strlen(name);
	if (n > 63)
		name[n = 63] = '\0';
	while (n > 0 && strchr("._-", name[n - 1]))
		name[--n] = '\0';
	return strdup(resource_name_valid(buf) ? buf : "xilinx.com/fpga");
}

static int set_prop_u(struct xpu_device *d, const char *key, unsigned long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", v);
	return device_set_property(d, key, buf);
}

/* The loaded xclbin's UUID, when XRT reports one (a card with a design loaded). */
static int add_xclbin(const struct xrt_api *api, xclDeviceHandle h, struct xpu_device *d)
{
	struct xclDeviceUsage u = {};
	static const unsigned char none[16];
	unsigned char b[16];
	char uuid[37];

	if (!api->usage || api->usage(h, &u) != 0)
		return 0;
	memcpy(b, u.xclbinId, sizeof(b));
	if (memcmp(b, none, sizeof(b)) == 0)
		return 0;
	snprintf(uuid, sizeof(uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return device_set_property(d, "xclbin_uuid", uuid);
}

/* The compute units of the loaded xclbin (its IP layout's kernel instances), as the property
 * "compute_units": "<kernel>:<cu>,..." in the layout's order. None: nothing is set. */
static int add_compute_units(const struct xrt_api *api, xclDeviceHandle h, struct xpu_device *d)
{
	_cleanup_free_ struct xcl_ip_layout *l = NULL;
	_cleanup_strv_free_ char **cus = NULL;
	_cleanup_free_ char *joined = NULL;
	size_t size = 64 * 1024, n;

	if (!api->section)
		return 0;
	l = calloc(1, size);
	if (!l)
		return -ENOMEM;
	if (api->section(h, l, &size, XCL_SECTION_IP_LAYOUT, 0) != 0 ||
	    size < offsetof(struct xcl_ip_layout, m_ip_data) || l->m_count <= 0)
		return 0;
	n = MIN((size_t)l->m_count,
		(size - offsetof(struct xcl_ip_layout, m_ip_data)) / sizeof(struct xcl_ip_data));
	for (size_t i = 0; i < n && i < XRT_MAX_COMPUTE_UNITS; i++) {
		_cleanup_free_ char *name = field_string((const char *)l->m_ip_data[i].m_name,
							 sizeof(l->m_ip_data[i].m_name));

		if (l->m_ip_data[i].m_type != XCL_IP_KERNEL || !name || strchr(name, ','))
			continue;
		if (strv_consume(&cus, TAKE_PTR(name)) < 0)
			return -ENOMEM;
	}
	if (!cus)
		return 0;
	joined = strv_join(cus, ",");
	return joined ? device_set_property(d, "compute_units", joined) : -ENOMEM;
}

/* One device XRT described, as a record; NULL on OOM. */
static struct xpu_device *describe(const struct xrt_api *api, xclDeviceHandle h, unsigned index,
				   const struct xclDeviceInfo2 *info, bool emulated)
{
	_cleanup_(device_freep) struct xpu_device *d = device_new();
	_cleanup_free_ char *shell = field_string(info->mName, sizeof(info->mName));
	_cleanup_free_ char *part = field_string(info->mFpga, sizeof(info->mFpga));
	unsigned slot = info->mPciSlot;
	char clocks[64] = "";
	size_t n = 0;

	if (!d || !(d->vendor = strdup("xilinx")))
		return NULL;
	d->kind = XPU_KIND_FPGA;
	if (!emulated && slot != 0) {
		/* the user function; the backend matches it to the card's PCI record */
		d->has_pci = true;
		snprintf(d->pci.address, sizeof(d->pci.address), "%04x:%02x:%02x.%x", slot >> 16,
			 (slot >> 8) & 0xff, (slot >> 3) & 0x1f, slot & 7);
		if (!(d->id = strdup(d->pci.address)))
			return NULL;
	} else if (asprintf(&d->id, "xrt-%u", index) < 0) {
		d->id = NULL;
		return NULL;
	}
	if ((shell && !(d->model = strdup(shell))) ||
	    !(d->resource = resource_name(shell, info->mTimeStamp)))
		return NULL;
	d->memory_bytes = info->mDDRSize;
	if ((shell && device_set_property(d, "shell", shell) < 0) ||
	    (part && device_set_property(d, "fpga_part", part) < 0) ||
	    set_prop_u(d, "ddr_banks", info->mDDRBankCount) < 0 ||
	    set_prop_u(d, "xrt_index", index) < 0 ||
	    (info->mTimeStamp && set_prop_u(d, "shell_timestamp", info->mTimeStamp) < 0) ||
	    (emulated && device_set_property(d, "emulation", "sw_emu") < 0))
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(info->mOCLFrequency); i++)
		if (info->mOCLFrequency[i])
			n += (size_t)snprintf(clocks + n, sizeof(clocks) - n, "%s%u", n ? "," : "",
					      info->mOCLFrequency[i]);
	if (n && device_set_property(d, "clocks_mhz", clocks) < 0)
		return NULL;
	/* sensors the emulation and some shells leave at 0: not reported */
	if (info->mOnChipTemp && info->mOnChipTemp < 200 &&
	    set_prop_u(d, "temperature_celsius", info->mOnChipTemp) < 0)
		return NULL;
	/* 12 V rails: mV times mA */
	unsigned long long uw = (unsigned long long)info->m12VPex * info->mPexCurr +
				(unsigned long long)info->m12VAux * info->mAuxCurr;
	if (uw && uw < 1000000000ULL) {
		char w[32];

		snprintf(w, sizeof(w), "%llu.%02llu", uw / 1000000, (uw % 1000000) / 10000);
		if (device_set_property(d, "power_watts", w) < 0)
			return NULL;
	}
	if (add_xclbin(api, h, d) < 0 || add_compute_units(api, h, d) < 0)
		return NULL;
	if (info->mMagic != XCL_DEVICE_INFO_MAGIC &&
	    device_set_unhealthy(d, "XRT: the device's information is not valid (magic %#x)",
				 info->mMagic) < 0)
		return NULL;
	return TAKE_PTR(d);
}

static int enumerate(const struct xrt_api *api, unsigned count, bool emulated, FILE *out)
{
	int k = 0;

	for (unsigned i = 0; i < count && k >= 0; i++) {
		struct xclDeviceInfo2 info = {};
		_cleanup_(device_freep) struct xpu_device *d = NULL;
		xclDeviceHandle h;
		char reason[128];
		int r;

		h = api->open(i, NULL, XCL_QUIET);
		if (!h) {
			k = helper_emit(out, helper_msg_failure((int)i, NULL,
								"XRT: xclOpen failed"));
			continue;
		}
		r = api->info(h, &info);
		if (r != 0) {
			snprintf(reason, sizeof(reason), "XRT: xclGetDeviceInfo2 failed: %s",
				 strerror(r < 0 ? -r : r));
			api->close(h);
			k = helper_emit(out, helper_msg_failure((int)i, NULL, reason));
			continue;
		}
		d = describe(api, h, i, &info, emulated);
		api->close(h);
		if (!d)
			return -ENOMEM;
		k = helper_emit(out, helper_msg_device(d));
	}
	return k;
}

int xrt_enumerate_main(const char *library, FILE *out)
{
	struct xrt_api api = {};
	const struct dlsym_spec syms[] = {
		{ (void **)&api.probe, "xclProbe" },
		{ (void **)&api.open, "xclOpen" },
		{ (void **)&api.close, "xclClose" },
		{ (void **)&api.info, "xclGetDeviceInfo2" },
		{ (void **)&api.usage, "xclGetUsageInfo", true },
		{ (void **)&api.section, "xclGetSectionInfo", true },
	};
	const char *mode = secure_getenv(XRT_EMULATION_ENV);
	bool emulated = mode && *mode, unavailable;
	_cleanup_strv_free_ char **facts = NULL;
	_cleanup_free_ char *reason = NULL;
	unsigned declared = XRT_MAX_DEVICES, count;
	char num[16];
	int r;

	if (emulated && !streq(mode, "sw_emu"))
		return helper_emit(out, helper_msg_error(-EOPNOTSUPP, true,
							 "XRT emulation other than sw_emu is not "
							 "supported (" XRT_EMULATION_ENV ")"));
	if (emulated) {
		r = emconfig_devices(&declared, &unavailable, &reason);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return helper_emit(out, helper_msg_error(r, unavailable, reason));
	}
	r = dlopen_many(library, syms, ELEMENTSOF(syms), &api.dl, &reason);
	if (r < 0) {
		_cleanup_free_ char *why = NULL;

		if (asprintf(&why, "XRT not found: %s", reason ?: library) < 0)
			return -ENOMEM;
		return helper_emit(out, helper_msg_error(r, true, why));
	}
	if (strv_extend(&facts, "library") < 0 || strv_extend(&facts, library) < 0 ||
	    strv_extend(&facts, "emulation") < 0 ||
	    strv_extend(&facts, emulated ? "sw_emu" : "none") < 0)
		return -ENOMEM;
	if (emulated) {
		snprintf(num, sizeof(num), "%u", declared);
		if (strv_extend(&facts, "emconfig_devices") < 0 || strv_extend(&facts, num) < 0)
			return -ENOMEM;
	}
	r = helper_emit(out, helper_msg_hello("xrt", facts));
	if (r < 0)
		return r;
	/* an emconfig.json that declares nothing: XRT would make a device up */
	count = declared ? api.probe() : 0;
	count = MIN(MIN(count, declared), (unsigned)XRT_MAX_DEVICES);
	r = enumerate(&api, count, emulated, out);
	/* XRT's static destructors run at exit; nothing of it is closed by hand */
	return r;
}
