// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A fake XRT shim, libxrt_core.so.2 (tests/fakes/README.md, "XRT"): the functions of
 * agent/runtimes/xilinx-xrt.h, answering from the description named by $XPU_FAKE_XRT, for what
 * XRT's own software emulation cannot do: a card on a PCI slot, sensors, a loaded xclbin, a
 * library that crashes or hangs in xclProbe, one that chatters on standard output.
 *
 *   {"probe": "crash" | "hang" | null,
 *    "chatter": true,                     xclProbe prints a banner on stdout, as XRT tools do
 *    "devices": [{"name": "xilinx_u250_gen3x16_xdma_shell_4_1", "timestamp": 1628027999,
 *                 "fpga": "xcu250-figd2104-2L-e", "pci": "0000:3b:00.1", "ddr_bytes": 68719476736,
 *                 "banks": 4, "temperature": 41, "pex_mv": 12100, "pex_ma": 2000,
 *                 "xclbin_uuid": "00112233-4455-6677-8899-aabbccddeeff",
 *                 "info_error": 0}]}       a nonzero xclGetDeviceInfo2 return value
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtimes/xilinx-xrt.h"

#define EXPORT __attribute__((visibility("default")))

static json_t *doc;

static json_t *description(void)
{
	const char *path = getenv("XPU_FAKE_XRT");
	json_error_t e;

	if (!doc && path) {
		doc = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
		if (!doc)
			fprintf(stderr, "fake-xrt: %s: line %d: %s\n", path, e.line, e.text);
	}
	return doc;
}

static json_t *device(unsigned index)
{
	return json_array_get(json_object_get(description(), "devices"), index);
}

static unsigned long long number(json_t *o, const char *key)
{
	return (unsigned long long)json_integer_value(json_object_get(o, key));
}

EXPORT unsigned int xclProbe(void)
{
	const char *fault = json_string_value(json_object_get(description(), "probe"));

	if (json_is_true(json_object_get(description(), "chatter"))) {
		printf("XRT build version: 2.13.466 (fake)\n");
		fflush(stdout);
	}
	if (fault && strcmp(fault, "crash") == 0)
		raise(SIGSEGV);
	if (fault && strcmp(fault, "hang") == 0)
		for (;;)
			pause();
	return (unsigned)json_array_size(json_object_get(description(), "devices"));
}

EXPORT xclDeviceHandle xclOpen(unsigned int index, const char *unused1,
			       enum xclVerbosityLevel unused2)
{
	/* the real library makes a device up past the count: a fake that fails shows a caller
	 * who asks for it */
	if (!device(index)) {
		fprintf(stderr, "fake-xrt: xclOpen(%u) past the probe's count\n", index);
		abort();
	}
	return (xclDeviceHandle)(uintptr_t)(index + 1);
}

EXPORT void xclClose(xclDeviceHandle handle)
{
}

EXPORT int xclGetDeviceInfo2(xclDeviceHandle handle, struct xclDeviceInfo2 *info)
{
	json_t *d = device((unsigned)(uintptr_t)handle - 1);
	const char *s;
	unsigned dom, bus, dev, fn;

	if (!d)
		return -22;
	if (number(d, "info_error"))
		return (int)number(d, "info_error");
	memset(info, 0, sizeof(*info));
	info->mMagic = XCL_DEVICE_INFO_MAGIC;
	info->mVendorId = 0x10ee;
	snprintf(info->mName, sizeof(info->mName), "%s",
		 json_string_value(json_object_get(d, "name")) ?: "");
	snprintf(info->mFpga, sizeof(info->mFpga), "%s",
		 json_string_value(json_object_get(d, "fpga")) ?: "");
	info->mTimeStamp = number(d, "timestamp");
	info->mDDRSize = number(d, "ddr_bytes");
	info->mDDRBankCount = (unsigned short)number(d, "banks");
	info->mOnChipTemp = (unsigned short)number(d, "temperature");
	info->m12VPex = (unsigned short)number(d, "pex_mv");
	info->mPexCurr = number(d, "pex_ma");
	info->mOCLFrequency[0] = 300;
	info->mOCLFrequency[1] = 500;
	s = json_string_value(json_object_get(d, "pci"));
	if (s && sscanf(s, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) == 4)
		info->mPciSlot = dom << 16 | bus << 8 | dev << 3 | fn;
	return 0;
}

EXPORT int xclGetUsageInfo(xclDeviceHandle handle, struct xclDeviceUsage *info)
{
	json_t *d = device((unsigned)(uintptr_t)handle - 1);
	const char *s = json_string_value(json_object_get(d, "xclbin_uuid"));
	unsigned char b[16] = {};

	memset(info, 0, sizeof(*info));
	for (size_t i = 0, j = 0; s && s[j] && i < sizeof(b); j++) {
		if (s[j] == '-')
			continue;
		if (sscanf(s + j, "%2hhx", &b[i++]) != 1)
			return -22;
		j++;
	}
	memcpy(info->xclbinId, b, sizeof(b));
	return 0;
}

/* The IP layout of the loaded xclbin: "compute_units": ["<kernel>:<cu>", ...] of the device. */
EXPORT int xclGetSectionInfo(xclDeviceHandle handle, void *info, size_t *size, int kind,
			     int index)
{
	json_t *d = device((unsigned)(uintptr_t)handle - 1);
	json_t *cus = json_object_get(d, "compute_units"), *cu;
	struct xcl_ip_layout *l = info;
	size_t i, need;

	if (kind != XCL_SECTION_IP_LAYOUT || index != 0 || !json_is_array(cus))
		return -2; /* ENOENT: no such section */
	need = offsetof(struct xcl_ip_layout, m_ip_data) +
	       json_array_size(cus) * sizeof(struct xcl_ip_data);
	if (*size < need)
		return -28; /* ENOSPC */
	memset(l, 0, need);
	l->m_count = (int32_t)json_array_size(cus);
	json_array_foreach(cus, i, cu) {
		l->m_ip_data[i].m_type = XCL_IP_KERNEL;
		l->m_ip_data[i].m_base_address = 0x1800000 + i * 0x10000;
		snprintf((char *)l->m_ip_data[i].m_name, sizeof(l->m_ip_data[i].m_name), "%s",
			 json_string_value(cu) ?: "");
	}
	*size = need;
	return 0;
}
