/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xpu_pci internals shared by its files: pci.c (probe, interrupts, health), chrdev.c (the
 * /dev/xpu/N node and its ioctls), sysfs.c (attributes), genl.c (the "xpu" family) and
 * main.c (module init, the device list, object counters).
 */
#ifndef XPU_PCI_INTERNAL_H
#define XPU_PCI_INTERNAL_H

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include <xpu/uapi/xpu_pci.h>

#define XPU_MAX_DEVICES 256

/* QEMU's edu device: the reference device (docs/specs/edu.rst in QEMU). */
#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_REG_ID 0x00
#define EDU_REG_LIVENESS 0x04
#define EDU_REG_FACTORIAL 0x08
#define EDU_REG_STATUS 0x20
#define EDU_STATUS_COMPUTING 0x01
#define EDU_STATUS_IRQFACT 0x80
#define EDU_REG_IRQ_STATUS 0x24
#define EDU_REG_IRQ_ACK 0x64
#define EDU_IRQ_FACTORIAL 0x01

/*
 * One bound PCI function. Lifetime: the embedded class device's reference count; probe holds
 * one, every open file holds one, and the release callback frees the structure. The hardware
 * may be touched only with hw_lock held for reading and removed false; remove() sets removed,
 * then takes hw_lock for writing before it unmaps anything.
 */
struct xpu_dev {
	struct device dev;
	struct cdev cdev;
	struct pci_dev *pdev;
	void __iomem *mmio;
	int index;
	char addr[XPU_PCI_ADDR_LEN];
	u16 vendor;
	u16 device;
	u32 id_reg;
	bool is_edu;
	bool msi;
	int irq;

	struct rw_semaphore hw_lock;
	bool removed;
	atomic_t open_count;

	struct mutex health_lock; /* health, health_reason */
	enum xpu_pci_health health;
	char health_reason[XPU_HEALTH_REASON_LEN];
	atomic_t liveness_failures;
	struct delayed_work liveness;
	/* held by a liveness probe, and by the PCI core's function resets from prepare to done */
	struct mutex probe_lock;
	bool fake_fault;	  /* testing: probes fail until the next function reset */
	struct dentry *debugfs;	  /* xpu_pci/xpuN/ */

	struct mutex job_lock; /* one factorial at a time */
	wait_queue_head_t job_wq;
	u32 irq_status;	       /* written by the interrupt handler */
	atomic64_t irq_count;

	atomic64_t aer[2];     /* non-fatal, fatal (error_detected calls) */
	struct list_head node; /* xpu_devices, under xpu_devices_lock */
};

/* main.c */
extern struct list_head xpu_devices;
extern struct mutex xpu_devices_lock;
extern struct class *xpu_class;
extern dev_t xpu_devt;
extern bool xpu_fake_liveness_fail;
extern struct dentry *xpu_debugfs;
extern unsigned int xpu_liveness_ms;
enum xpu_obj { XPU_OBJ_DEVICES, XPU_OBJ_FILES, XPU_OBJ_JOBS, __XPU_OBJ_MAX };
void xpu_obj_inc(enum xpu_obj o);
void xpu_obj_dec(enum xpu_obj o);

/* pci.c */
extern struct pci_driver xpu_pci_driver;
void xpu_set_health(struct xpu_dev *xd, enum xpu_pci_health h, const char *reason);

/* chrdev.c */
extern const struct file_operations xpu_fops;
int xpu_do_reset(struct xpu_dev *xd);
int xpu_do_factorial(struct xpu_dev *xd, struct xpu_pci_factorial *f);

/* sysfs.c */
extern const struct attribute_group *xpu_dev_groups[];

/* genl.c */
int xpu_genl_init(void);
void xpu_genl_exit(void);
void xpu_genl_notify(struct xpu_dev *xd, u8 cmd);

#endif
