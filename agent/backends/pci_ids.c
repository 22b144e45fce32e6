// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Vendor knowledge of the generic PCI backend: which vendors make accelerators, what their
 * devices are called, and which resource names their own device plugins advertise. Facts come
 * from the PCI ID registry and each vendor's published Kubernetes device plugin.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/pci.h"
#include "shared/macro.h"

#define PCI_CLASS_BASE(c) ((c) >> 16)
#define PCI_BASE_DISPLAY 0x03
#define PCI_BASE_NETWORK 0x02
#define PCI_BASE_ACCEL 0x12
#define PCI_BASE_MULTIMEDIA 0x04

enum vendor_role {
	ROLE_GPU,   /* display-class functions are GPUs */
	ROLE_ACCEL, /* every function is an accelerator */
	ROLE_FPGA,  /* every non-network function is an FPGA */
	ROLE_LISTED, /* only the device ids listed in model_table are accelerators */
};

static const struct vendor {
	uint16_t id;
	const char *name;
	enum vendor_role role;
} vendor_table[] = {
	{ 0x10de, "nvidia", ROLE_GPU },	    { 0x1002, "amd", ROLE_GPU },
	{ 0x8086, "intel", ROLE_GPU },	    { 0x10ee, "xilinx", ROLE_FPGA },
	{ 0x1172, "altera", ROLE_FPGA },    { 0x1ac1, "google", ROLE_ACCEL }, /* Coral */
	{ 0x1ae0, "google", ROLE_ACCEL },   /* Cloud TPU */
	{ 0x1da3, "habana", ROLE_ACCEL },   { 0x1e52, "tenstorrent", ROLE_ACCEL },
	{ 0x1de0, "groq", ROLE_ACCEL },	    { 0x1d0f, "aws", ROLE_LISTED },
	{ 0x17cb, "qualcomm", ROLE_LISTED }, { 0x1a03, "aspeed", ROLE_LISTED },
};

static const struct model {
	uint16_t vendor_id;
	uint16_t device_id;
	const char *name;
} model_table[] = {
	{ 0x10de, 0x2330, "NVIDIA H100 80GB HBM3" },
	{ 0x10de, 0x2331, "NVIDIA H100 PCIe" },
	{ 0x10de, 0x2335, "NVIDIA H200" },
	{ 0x10de, 0x20b0, "NVIDIA A100-SXM4-40GB" },
	{ 0x10de, 0x20b2, "NVIDIA A100-SXM4-80GB" },
	{ 0x10de, 0x20b5, "NVIDIA A100 80GB PCIe" },
	{ 0x10de, 0x27b8, "NVIDIA L4" },
	{ 0x10de, 0x26b9, "NVIDIA L40S" },
	{ 0x1002, 0x74a1, "AMD Instinct MI300X" },
	{ 0x1002, 0x740c, "AMD Instinct MI250X/MI250" },
	{ 0x1002, 0x740f, "AMD Instinct MI210" },
	{ 0x8086, 0x56c0, "Intel Data Center GPU Flex 170" },
	{ 0x8086, 0x56c1, "Intel Data Center GPU Flex 140" },
	{ 0x8086, 0x0bd5, "Intel Data Center GPU Max 1550" },
	{ 0x8086, 0x0bd9, "Intel Data Center GPU Max 1100" },
	{ 0x8086, 0x0bda, "Intel Data Center GPU Max 1100" },
	{ 0x8086, 0x0bdb, "Intel Data Center GPU Max 1100" },
	{ 0x8086, 0x7d1d, "Intel NPU (Meteor Lake)" },
	{ 0x8086, 0x643e, "Intel NPU (Lunar Lake)" },
	{ 0x10ee, 0x5004, "Xilinx Alveo U250" },
	{ 0x10ee, 0x5005, "Xilinx Alveo U250" },
	{ 0x10ee, 0x500c, "Xilinx Alveo U280" },
	{ 0x10ee, 0x500d, "Xilinx Alveo U280" },
	{ 0x1ac1, 0x089a, "Google Coral Edge TPU" },
	{ 0x1da3, 0x1000, "Habana Gaudi" },
	{ 0x1da3, 0x1020, "Habana Gaudi2" },
	{ 0x1da3, 0x1060, "Habana Gaudi3" },
	{ 0x1e52, 0x401e, "Tenstorrent Wormhole" },
	{ 0x1e52, 0xb140, "Tenstorrent Blackhole" },
	{ 0x1d0f, 0x7064, "AWS Inferentia" },
	{ 0x1d0f, 0x7164, "AWS Inferentia2" },
	{ 0x1d0f, 0x7264, "AWS Trainium" },
	{ 0x1d0f, 0x7364, "AWS Trainium2" },
	{ 0x17cb, 0xa100, "Qualcomm Cloud AI 100" },
};

static const struct vendor *vendor_find(uint16_t id)
{
	for (size_t i = 0; i < ELEMENTSOF(vendor_table); i++)
		if (vendor_table[i].id == id)
			return &vendor_table[i];
	return NULL;
}

const char *pci_vendor_name(uint16_t vendor_id)
{
	const struct vendor *v = vendor_find(vendor_id);

	return v ? v->name : NULL;
}

const char *pci_model_name(uint16_t vendor_id, uint16_t device_id)
{
	for (size_t i = 0; i < ELEMENTSOF(model_table); i++)
		if (model_table[i].vendor_id == vendor_id && model_table[i].device_id == device_id)
			return model_table[i].name;
	return NULL;
}

int pci_classify(const struct pci_ident *id)
{
	const struct vendor *v = vendor_find(id->vendor_id);
	unsigned base = PCI_CLASS_BASE(id->class_code);

	/* Functions that only carry other functions' traffic are never accelerators. */
	if (base == PCI_BASE_NETWORK || base == PCI_BASE_MULTIMEDIA || base == 0x06 /* bridge */)
		return -ENODEV;

	if (v) {
		switch (v->role) {
		case ROLE_FPGA:
			return XPU_KIND_FPGA;
		case ROLE_ACCEL:
			return XPU_KIND_ACCEL;
		case ROLE_LISTED:
			if (pci_model_name(id->vendor_id, id->device_id))
				return XPU_KIND_ACCEL;
			break;
		case ROLE_GPU:
			/*
			 * NVIDIA and AMD: display (0x03) and processing-accelerator (0x12)
			 * functions are GPUs. Intel makes every kind of function; its display
			 * functions count only with a DRM render node (an iGPU or a discrete
			 * card), its 0x12 functions (NPUs, Gaudi, ...) are accelerators.
			 */
			if (base == PCI_BASE_ACCEL && id->vendor_id == 0x8086)
				return XPU_KIND_ACCEL;
			if (base == PCI_BASE_ACCEL)
				return XPU_KIND_GPU;
			if (base == PCI_BASE_DISPLAY &&
			    (id->vendor_id != 0x8086 || id->has_render_node))
				return XPU_KIND_GPU;
			break;
		}
		if (v->role != ROLE_GPU && v->role != ROLE_LISTED)
			return -ENODEV;
	}

	if (base == PCI_BASE_ACCEL || id->has_accel_node)
		return XPU_KIND_ACCEL;
	/* A render node on a display function of an unknown vendor: some GPU; a BMC's VGA
	 * (ASPEED, Matrox) has a card node but no render node and stays out. */
	if (id->has_render_node && v == NULL)
		return base == PCI_BASE_DISPLAY ? XPU_KIND_GPU : XPU_KIND_ACCEL;
	return -ENODEV;
}

static char *slugify(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	bool dash = false;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (isalnum((unsigned char)*s)) {
			if (dash && o != out)
				*o++ = '-';
			*o++ = (char)tolower((unsigned char)*s);
			dash = false;
		} else {
			dash = true;
		}
	}
	*o = '\0';
	return out;
}

char *pci_default_resource(const struct pci_ident *id, const char *vendor, const char *driver,
			   const char *model)
{
	_cleanup_free_ char *vslug = NULL, *mslug = NULL;
	const char *fixed = NULL;
	char *s;
	int kind = pci_classify(id);

	switch (id->vendor_id) {
	case 0x10de:
		fixed = "nvidia.com/gpu";
		break;
	case 0x1002:
		fixed = kind == XPU_KIND_GPU ? "amd.com/gpu" : NULL;
		break;
	case 0x8086:
		if (kind == XPU_KIND_GPU)
			fixed = streq_ptr(driver, "xe") ? "gpu.intel.com/xe" : "gpu.intel.com/i915";
		break;
	case 0x10ee:
		fixed = "xilinx.com/fpga";
		break;
	case 0x1172:
		fixed = "intel.com/fpga";
		break;
	case 0x1da3:
		fixed = "habana.ai/gaudi";
		break;
	case 0x1d0f:
		fixed = "aws.amazon.com/neuron";
		break;
	case 0x1ae0:
		fixed = "google.com/tpu";
		break;
	}
	if (fixed)
		return strdup(fixed);

	vslug = slugify(vendor ?: "unknown");
	mslug = slugify(model ?: "device");
	if (!vslug || !mslug)
		return NULL;
	/* "Google Coral Edge TPU" from vendor "google" -> "google-coral-edge-tpu", not
	 * "google-google-...". */
	if (strncmp(mslug, vslug, strlen(vslug)) == 0 && mslug[strlen(vslug)] == '-')
		return asprintf(&s, "xpu.dev/%s", mslug) < 0 ? NULL : s;
	return asprintf(&s, "xpu.dev/%s-%s", vslug, mslug) < 0 ? NULL : s;
}
