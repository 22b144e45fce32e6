/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The part of XRT's C API ("the shim", xrt.h of XRT 2.13, Debian 12's libxrt-dev) that xpud's
 * helper uses, declared here so that no XRT header is needed to build. Only agent/runtimes/xrt.c
 * and the fake library under tests/fakes/ include this file: xpud itself never sees an XRT type.
 *
 * ABI: the shim libraries' soname version 2 (libxrt_core.so.2 for PCIe cards through the xocl
 * driver, libxrt_swemu.so.2 for software emulation), whose symbols are unversioned C names.
 * struct xclDeviceInfo2 must match the library's layout exactly (736 bytes on x86-64 with XRT
 * 2.13, checked below); struct xclDeviceUsage likewise. xclOpen's last two arguments are
 * ignored by XRT 2.13 (logging is set in xrt.ini).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void *xclDeviceHandle;

enum xclVerbosityLevel {
	XCL_QUIET = 0,
	XCL_INFO = 1,
	XCL_WARN = 2,
	XCL_ERROR = 3,
};

#define XCL_DEVICE_INFO_MAGIC 0x586c0c6cu

struct xclDeviceInfo2 {
	unsigned int mMagic;
	char mName[256]; /* the shell (platform) name, "VBNV": xilinx_u250_gen3x16_xdma_shell_4_1 */
	unsigned short mHALMajorVersion;
	unsigned short mHALMinorVersion;
	unsigned short mVendorId;
	unsigned short mDeviceId; /* not set by the emulation libraries */
	unsigned short mSubsystemId;
	unsigned short mSubsystemVendorId;
	unsigned short mDeviceVersion;
	size_t mDDRSize; /* bytes, all banks */
	size_t mDataAlignment;
	size_t mDDRFreeSize;
	size_t mMinTransferSize;
	unsigned short mDDRBankCount;
	unsigned short mOCLFrequency[4]; /* MHz */
	unsigned short mPCIeLinkWidth;
	unsigned short mPCIeLinkSpeed;
	unsigned short mDMAThreads;
	unsigned short mOnChipTemp; /* degrees C, 0: not reported */
	unsigned short mFanTemp;
	unsigned short mVInt;
	unsigned short mVAux;
	unsigned short mVBram;
	float mCurrent;
	unsigned short mNumClocks;
	unsigned short mFanSpeed;
	bool mMigCalib;
	unsigned long long mXMCVersion;
	unsigned long long mMBVersion;
	unsigned short m12VPex; /* mV */
	unsigned short m12VAux; /* mV */
	unsigned long long mPexCurr; /* mA */
	unsigned long long mAuxCurr; /* mA */
	unsigned short mFanRpm;
	unsigned short mDimmTemp[4];
	unsigned short mSE98Temp[4];
	unsigned short m3v3Pex;
	unsigned short m3v3Aux;
	unsigned short mDDRVppBottom;
	unsigned short mDDRVppTop;
	unsigned short mSys5v5;
	unsigned short m1v2Top;
	unsigned short m1v8Top;
	unsigned short m0v85;
	unsigned short mMgt0v9;
	unsigned short m12vSW;
	unsigned short mMgtVtt;
	unsigned short m1v2Bottom;
	unsigned long long mDriverVersion;
	unsigned int mPciSlot; /* domain << 16 | bus << 8 | device << 3 | function */
	bool mIsXPR;
	unsigned long long mTimeStamp; /* the shell's timestamp (its ROM's) */
	char mFpga[256];	       /* the FPGA part: xcu250-figd2104-2L-e */
	unsigned short mPCIeLinkWidthMax;
	unsigned short mPCIeLinkSpeedMax;
	unsigned short mVccIntVol;
	unsigned short mVccIntCurr;
	unsigned short mNumCDMA;
};

#define XCL_DEVICE_USAGE_COUNT 8

/* xclGetUsageInfo: xclbinId holds the loaded xclbin's UUID in its first 16 bytes (zero: none). */
struct xclDeviceUsage {
	size_t h2c[XCL_DEVICE_USAGE_COUNT];
	size_t c2h[XCL_DEVICE_USAGE_COUNT];
	size_t ddrMemUsed[XCL_DEVICE_USAGE_COUNT];
	unsigned int ddrBOAllocated[XCL_DEVICE_USAGE_COUNT];
	unsigned int totalContexts;
	uint64_t xclbinId[4];
	unsigned int dma_channel_cnt;
	unsigned int mm_channel_cnt;
	uint64_t memSize[XCL_DEVICE_USAGE_COUNT];
};

/* xclGetSectionInfo(IP_LAYOUT): the loaded xclbin's IPs (xclbin.h's struct ip_layout, its
 * entries at offset 8), kernel instances (compute units) of type IP_KERNEL, named
 * "<kernel>:<cu>". */
#define XCL_SECTION_IP_LAYOUT 8
#define XCL_IP_KERNEL 1

struct xcl_ip_data {
	uint32_t m_type;
	uint32_t properties;
	uint64_t m_base_address;
	uint8_t m_name[64];
};

struct xcl_ip_layout {
	int32_t m_count;
	struct xcl_ip_data m_ip_data[];
};

#if defined(__x86_64__)
_Static_assert(sizeof(struct xclDeviceInfo2) == 736, "xclDeviceInfo2 is XRT 2.13's");
#endif
_Static_assert(sizeof(struct xcl_ip_data) == 80, "ip_data is XRT's");
_Static_assert(offsetof(struct xcl_ip_layout, m_ip_data) == 8, "ip_layout is XRT's");

/* The number of devices; no error is reported (0). */
unsigned int xclProbe(void);
/* A handle to device @deviceIndex, or NULL. Past xclProbe()'s count the emulation libraries hand
 * out a made-up default device: never call it with such an index. */
xclDeviceHandle xclOpen(unsigned int deviceIndex, const char *unused1,
			enum xclVerbosityLevel unused2);
void xclClose(xclDeviceHandle handle);
/* 0 or an error number. */
int xclGetDeviceInfo2(xclDeviceHandle handle, struct xclDeviceInfo2 *info);
int xclGetUsageInfo(xclDeviceHandle handle, struct xclDeviceUsage *info);
/* The loaded xclbin's section @kind (an enum axlf_section_kind, an int in XRT's ABI), @index'th
 * entry, into @info (*size: its room; the length written). 0 or an error number. */
int xclGetSectionInfo(xclDeviceHandle handle, void *info, size_t *size, int kind, int index);
