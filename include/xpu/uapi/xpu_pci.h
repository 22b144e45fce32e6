/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * The user-space interface of the xpu_pci kernel module: the ioctls of /dev/xpu/N and the
 * generic netlink family "xpu". Shared by kmod/ and the agent's kmod backend.
 *
 * Versioning: XPU_PCI_UAPI_VERSION grows when something is added. Nothing is ever renumbered
 * or removed; new attributes and commands go at the end of their enums, new ioctl structs are
 * new ioctl numbers. The family's version (XPU_GENL_VERSION) equals the uAPI version that
 * introduced its current message layout.
 */
#ifndef _UAPI_XPU_PCI_H
#define _UAPI_XPU_PCI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define XPU_PCI_UAPI_VERSION 1

/* ---- generic netlink ---------------------------------------------------------------------- */
#define XPU_GENL_NAME "xpu"
#define XPU_GENL_VERSION 1
#define XPU_GENL_MCGRP_EVENTS "events"

enum xpu_genl_cmd {
	XPU_CMD_UNSPEC,
	XPU_CMD_GET_DEVICE,	/* doit: by XPU_A_INDEX or XPU_A_PCI_ADDR; dumpit: all */
	XPU_CMD_DEVICE_ADDED,	/* multicast, carries the device's attributes */
	XPU_CMD_DEVICE_REMOVED, /* multicast, carries the device's attributes */
	XPU_CMD_HEALTH_CHANGED, /* multicast, carries the device's attributes */
	__XPU_CMD_MAX,
};
#define XPU_CMD_MAX (__XPU_CMD_MAX - 1)

enum xpu_genl_attr {
	XPU_A_UNSPEC,
	XPU_A_INDEX,		 /* u32: N of /dev/xpu/N */
	XPU_A_PCI_ADDR,		 /* string: "0000:01:00.0" */
	XPU_A_VENDOR,		 /* u16 */
	XPU_A_DEVICE,		 /* u16 */
	XPU_A_HEALTH,		 /* u8: enum xpu_pci_health */
	XPU_A_HEALTH_REASON,	 /* string, only when not healthy */
	XPU_A_ID_REG,		 /* u32: the device's identification register, if it has one */
	XPU_A_NUMA_NODE,	 /* s32: -1 when unknown */
	XPU_A_DEVNAME,		 /* string: "xpu/0", relative to /dev */
	XPU_A_BAR0_SIZE,	 /* u64 */
	XPU_A_OPEN_COUNT,	 /* u32 */
	XPU_A_LIVENESS_FAILURES, /* u32: failed probes since the device was bound */
	XPU_A_AER_NONFATAL,	 /* u64: non-fatal AER errors reported to the driver */
	XPU_A_AER_FATAL,	 /* u64: fatal AER errors reported to the driver */
	XPU_A_PAD,
	__XPU_A_MAX,
};
#define XPU_A_MAX (__XPU_A_MAX - 1)

/* PCI addresses are "dddd:bb:dd.f": 12 characters; the buffer leaves room for wider domains. */
#define XPU_PCI_ADDR_LEN 16
#define XPU_HEALTH_REASON_LEN 64

enum xpu_pci_health {
	XPU_PCI_HEALTH_UNKNOWN,	  /* not probed yet */
	XPU_PCI_HEALTH_OK,
	XPU_PCI_HEALTH_UNHEALTHY, /* the liveness probe failed, or a fatal AER error */
	XPU_PCI_HEALTH_REMOVED,	  /* the device is gone; only in XPU_CMD_DEVICE_REMOVED */
};

/* ---- ioctls on /dev/xpu/N ----------------------------------------------------------------- */
#define XPU_PCI_IOC_MAGIC 0xb7

#define XPU_PCI_INFO_F_FLR (1U << 0)	   /* function level reset supported */
#define XPU_PCI_INFO_F_FACTORIAL (1U << 1) /* XPU_PCI_IOC_FACTORIAL supported */
#define XPU_PCI_INFO_F_MSI (1U << 2)	   /* completion interrupts are MSI (else INTx) */

struct xpu_pci_ioc_info {
	__u32 uapi_version; /* out: XPU_PCI_UAPI_VERSION of the module */
	__u32 index;
	__u16 vendor;
	__u16 device;
	__u32 id_reg;
	__u32 health; /* enum xpu_pci_health */
	__s32 numa_node;
	__u32 flags; /* XPU_PCI_INFO_F_* */
	__u32 open_count;
	__u64 bar_size[6];
	char pci_addr[XPU_PCI_ADDR_LEN];
	__u64 reserved[4]; /* zero */
};

/* The reference device's unit of work: input! computed by the device, completion by interrupt. */
#define XPU_PCI_FACTORIAL_MAX 12	 /* 12! is the largest factorial in 32 bits */
#define XPU_PCI_TIMEOUT_MS_MAX 10000
struct xpu_pci_factorial {
	__u32 input;	  /* in: 0..XPU_PCI_FACTORIAL_MAX */
	__u32 timeout_ms; /* in: 1..XPU_PCI_TIMEOUT_MS_MAX; 0 means 1000 */
	__u32 result;	  /* out */
	__u32 flags;	  /* in: must be 0 */
};

#define XPU_PCI_IOC_INFO _IOR(XPU_PCI_IOC_MAGIC, 0, struct xpu_pci_ioc_info)
/* Resets the function: FLR where supported, else whatever reset the PCI core has; -ENOTTY if none. */
#define XPU_PCI_IOC_RESET _IO(XPU_PCI_IOC_MAGIC, 1)
#define XPU_PCI_IOC_FACTORIAL _IOWR(XPU_PCI_IOC_MAGIC, 2, struct xpu_pci_factorial)

#endif /* _UAPI_XPU_PCI_H */
