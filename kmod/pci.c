// SPDX-License-Identifier: GPL-2.0-only
/*
 * Binding: probe and remove, the completion interrupt, the liveness probe and AER callbacks.
 * Functions other than the reference device (assigned through new_id or driver_override) get
 * the char device, attributes and netlink presence, but no register access beyond BAR 0's
 * mapping: there is no register we could safely read on a device we do not know.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/random.h>

#include "xpu.h"

static DEFINE_IDA(xpu_ida);

void xpu_set_health(struct xpu_dev *xd, enum xpu_pci_health h, const char *reason)
{
	bool changed;

	mutex_lock(&xd->health_lock);
	changed = xd->health != h || strncmp(xd->health_reason, reason ?: "", sizeof(xd->health_reason));
	xd->health = h;
	strscpy(xd->health_reason, reason ?: "", sizeof(xd->health_reason));
	mutex_unlock(&xd->health_lock);
	if (!changed || READ_ONCE(xd->removed))
		return;
	dev_info(&xd->pdev->dev, "health: %s%s%s\n", h == XPU_PCI_HEALTH_OK ? "healthy" : "unhealthy",
		 reason ? ", " : "", reason ?: "");
	xpu_genl_notify(xd, XPU_CMD_HEALTH_CHANGED);
	kobject_uevent(&xd->dev.kobj, KOBJ_CHANGE);
}

/* One liveness probe: the device must return the inverse of what was written. */
static void xpu_liveness_work(struct work_struct *work)
{
	struct xpu_dev *xd = container_of(to_delayed_work(work), struct xpu_dev, liveness);
	const char *fail = NULL;
	u32 v = get_random_u32(), got;

	down_read(&xd->hw_lock);
	if (xd->removed) {
		up_read(&xd->hw_lock);
		return;
	}
	/* not in the middle of a function reset: see xpu_reset_prepare() */
	mutex_lock(&xd->probe_lock);
	iowrite32(v, xd->mmio + EDU_REG_LIVENESS);
	got = ioread32(xd->mmio + EDU_REG_LIVENESS);
	up_read(&xd->hw_lock);

	if (got == 0xffffffff && v != 0)
		fail = "device does not answer (reads all ones)";
	else if (got != ~v)
		fail = "liveness register returned a wrong value";
	else if (READ_ONCE(xd->fake_fault))
		fail = "liveness probe failed (simulated until reset)";
	else if (READ_ONCE(xpu_fake_liveness_fail))
		fail = "liveness probe failed (simulated)";
	if (fail)
		atomic_inc(&xd->liveness_failures);
	xpu_set_health(xd, fail ? XPU_PCI_HEALTH_UNHEALTHY : XPU_PCI_HEALTH_OK, fail);
	mutex_unlock(&xd->probe_lock);

	if (!READ_ONCE(xd->removed))
		schedule_delayed_work(&xd->liveness, msecs_to_jiffies(READ_ONCE(xpu_liveness_ms)));
}

static irqreturn_t xpu_irq(int irq, void *data)
{
	struct xpu_dev *xd = data;
	u32 st;

	/* remove() frees the interrupt before it unmaps, so mmio is valid here */
	st = ioread32(xd->mmio + EDU_REG_IRQ_STATUS);
	if (!st || st == 0xffffffff)
		return IRQ_NONE;
	iowrite32(st, xd->mmio + EDU_REG_IRQ_ACK);
	atomic64_inc(&xd->irq_count);
	WRITE_ONCE(xd->irq_status, READ_ONCE(xd->irq_status) | st);
	wake_up(&xd->job_wq);
	return IRQ_HANDLED;
}

static void xpu_dev_release(struct device *dev)
{
	struct xpu_dev *xd = container_of(dev, struct xpu_dev, dev);

	ida_free(&xpu_ida, xd->index);
	pci_dev_put(xd->pdev);
	kfree(xd);
	xpu_obj_dec(XPU_OBJ_DEVICES);
}

static int xpu_setup_irq(struct xpu_dev *xd)
{
	struct pci_dev *pdev = xd->pdev;
	int r;

	r = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI | PCI_IRQ_LEGACY);
	if (r < 0)
		return r;
	xd->msi = pdev->msi_enabled;
	xd->irq = pci_irq_vector(pdev, 0);
	r = request_irq(xd->irq, xpu_irq, xd->msi ? 0 : IRQF_SHARED, "xpu_pci", xd);
	if (r) {
		pci_free_irq_vectors(pdev);
		xd->irq = -1;
	}
	return r;
}

static int xpu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct xpu_dev *xd;
	int r;

	xd = kzalloc(sizeof(*xd), GFP_KERNEL);
	if (!xd)
		return -ENOMEM;
	xpu_obj_inc(XPU_OBJ_DEVICES);
	xd->pdev = pci_dev_get(pdev);
	xd->irq = -1;
	xd->vendor = pdev->vendor;
	xd->device = pdev->device;
	xd->is_edu = pdev->vendor == EDU_VENDOR && pdev->device == EDU_DEVICE;
	strscpy(xd->addr, pci_name(pdev), sizeof(xd->addr));
	init_rwsem(&xd->hw_lock);
	mutex_init(&xd->health_lock);
	mutex_init(&xd->job_lock);
	mutex_init(&xd->probe_lock);
	init_waitqueue_head(&xd->job_wq);
	INIT_DELAYED_WORK(&xd->liveness, xpu_liveness_work);
	INIT_LIST_HEAD(&xd->node);
	xd->health = xd->is_edu ? XPU_PCI_HEALTH_UNKNOWN : XPU_PCI_HEALTH_OK;

	r = ida_alloc_max(&xpu_ida, XPU_MAX_DEVICES - 1, GFP_KERNEL);
	if (r < 0) {
		pci_dev_put(pdev);
		kfree(xd);
		xpu_obj_dec(XPU_OBJ_DEVICES);
		return r;
	}
	xd->index = r;
	/* from here on, put_device() frees everything above */
	device_initialize(&xd->dev);
	xd->dev.class = xpu_class;
	xd->dev.parent = &pdev->dev;
	xd->dev.devt = MKDEV(MAJOR(xpu_devt), xd->index);
	xd->dev.release = xpu_dev_release;
	dev_set_drvdata(&xd->dev, xd);
	r = dev_set_name(&xd->dev, "xpu%d", xd->index);
	if (r)
		goto err_put;

	r = pci_enable_device(pdev);
	if (r)
		goto err_put;
	r = pci_request_regions(pdev, "xpu_pci");
	if (r)
		goto err_disable;
	if (pci_resource_len(pdev, 0) && (pci_resource_flags(pdev, 0) & IORESOURCE_MEM)) {
		xd->mmio = pci_iomap(pdev, 0, 0);
		if (!xd->mmio) {
			r = -ENOMEM;
			goto err_regions;
		}
	}
	if (xd->is_edu && (!xd->mmio || pci_resource_len(pdev, 0) < 0x100)) {
		r = -ENODEV;
		goto err_unmap;
	}
	pci_set_master(pdev);
	if (xd->is_edu) {
		xd->id_reg = ioread32(xd->mmio + EDU_REG_ID);
		r = xpu_setup_irq(xd);
		if (r)
			goto err_unmap;
	}

	cdev_init(&xd->cdev, &xpu_fops);
	xd->cdev.owner = THIS_MODULE;
	r = cdev_device_add(&xd->cdev, &xd->dev);
	if (r)
		goto err_irq;
	pci_set_drvdata(pdev, xd);

	mutex_lock(&xpu_devices_lock);
	list_add_tail(&xd->node, &xpu_devices);
	mutex_unlock(&xpu_devices_lock);
	dev_info(&pdev->dev, "bound as xpu%d, id register 0x%08x, %s interrupts\n", xd->index,
		 xd->id_reg, xd->irq < 0 ? "no" : xd->msi ? "MSI" : "INTx");
	xpu_genl_notify(xd, XPU_CMD_DEVICE_ADDED);
	if (xd->is_edu) {
		/* errors are ignored: debugfs is for tests, and its calls accept an ERR_PTR */
		xd->debugfs = debugfs_create_dir(dev_name(&xd->dev), xpu_debugfs);
		debugfs_create_bool("fake_fault", 0600, xd->debugfs, &xd->fake_fault);
		schedule_delayed_work(&xd->liveness, 0);
	}
	return 0;

err_irq:
	if (xd->irq >= 0) {
		free_irq(xd->irq, xd);
		pci_free_irq_vectors(pdev);
	}
err_unmap:
	if (xd->mmio)
		pci_iounmap(pdev, xd->mmio);
err_regions:
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_put:
	put_device(&xd->dev);
	return r;
}

static void xpu_remove(struct pci_dev *pdev)
{
	struct xpu_dev *xd = pci_get_drvdata(pdev);

	mutex_lock(&xpu_devices_lock);
	list_del_init(&xd->node);
	mutex_unlock(&xpu_devices_lock);
	/* waits for a writer of fake_fault to finish */
	debugfs_remove_recursive(xd->debugfs);

	/* new hardware access fails from here; a waiting job wakes up and gives -ENODEV */
	WRITE_ONCE(xd->removed, true);
	wake_up_all(&xd->job_wq);
	cancel_delayed_work_sync(&xd->liveness);
	down_write(&xd->hw_lock);
	if (xd->irq >= 0) {
		free_irq(xd->irq, xd);
		pci_free_irq_vectors(pdev);
		xd->irq = -1;
	}
	if (xd->mmio)
		pci_iounmap(pdev, xd->mmio);
	xd->mmio = NULL;
	up_write(&xd->hw_lock);

	mutex_lock(&xd->health_lock);
	xd->health = XPU_PCI_HEALTH_REMOVED;
	mutex_unlock(&xd->health_lock);
	xpu_genl_notify(xd, XPU_CMD_DEVICE_REMOVED);
	dev_info(&pdev->dev, "xpu%d removed, %d open files\n", xd->index,
		 atomic_read(&xd->open_count));

	cdev_device_del(&xd->cdev, &xd->dev);
	pci_clear_master(pdev);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	pci_set_drvdata(pdev, NULL);
	put_device(&xd->dev);
}

static pci_ers_result_t xpu_error_detected(struct pci_dev *pdev, pci_channel_state_t state)
{
	struct xpu_dev *xd = pci_get_drvdata(pdev);

	if (!xd)
		return PCI_ERS_RESULT_NONE;
	if (state == pci_channel_io_normal) {
		atomic64_inc(&xd->aer[0]);
		return PCI_ERS_RESULT_CAN_RECOVER;
	}
	atomic64_inc(&xd->aer[1]);
	xpu_set_health(xd, XPU_PCI_HEALTH_UNHEALTHY, state == pci_channel_io_frozen ?
			   "fatal PCIe error, link reset pending" : "fatal PCIe error, device lost");
	return state == pci_channel_io_frozen ? PCI_ERS_RESULT_NEED_RESET
					      : PCI_ERS_RESULT_DISCONNECT;
}

static pci_ers_result_t xpu_slot_reset(struct pci_dev *pdev)
{
	pci_restore_state(pdev);
	return PCI_ERS_RESULT_RECOVERED;
}

/*
 * A function reset (XPU_PCI_IOC_RESET, the sysfs "reset" file, VFIO) turns the function's memory
 * decoding off while it lasts: a liveness probe then would read all ones and report a device
 * that is only being reset as dead. The PCI core calls these two with the device lock held, on
 * either side of every such reset, so the probe waits for the reset to end, and runs again right
 * after it to report how the device came back.
 */
static void xpu_reset_prepare(struct pci_dev *pdev)
{
	struct xpu_dev *xd = pci_get_drvdata(pdev);

	if (xd)
		mutex_lock(&xd->probe_lock);
}

static void xpu_reset_done(struct pci_dev *pdev)
{
	struct xpu_dev *xd = pci_get_drvdata(pdev);

	if (!xd)
		return;
	/* what a reset cures is gone, as a wedged engine is after a function-level reset */
	WRITE_ONCE(xd->fake_fault, false);
	mutex_unlock(&xd->probe_lock);
	if (xd->is_edu && !READ_ONCE(xd->removed))
		mod_delayed_work(system_wq, &xd->liveness, 0);
}

static const struct pci_error_handlers xpu_err_handlers = {
	.error_detected = xpu_error_detected,
	.slot_reset = xpu_slot_reset,
	.reset_prepare = xpu_reset_prepare,
	.reset_done = xpu_reset_done,
};

static const struct pci_device_id xpu_ids[] = {
	{ PCI_DEVICE(EDU_VENDOR, EDU_DEVICE) },
	{}
};
MODULE_DEVICE_TABLE(pci, xpu_ids);

struct pci_driver xpu_pci_driver = {
	.name = "xpu_pci",
	.id_table = xpu_ids,
	.probe = xpu_probe,
	.remove = xpu_remove,
	.err_handler = &xpu_err_handlers,
};
