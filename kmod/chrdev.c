// SPDX-License-Identifier: GPL-2.0-only
/*
 * /dev/xpu/N: information, reset and, on the reference device, one unit of work completed by
 * the device's interrupt. An open file pins the xpu_dev (not the hardware): after removal every
 * call returns -ENODEV.
 */
#include <linux/fs.h>
#include <linux/uaccess.h>

#include "xpu.h"

static int xpu_open(struct inode *inode, struct file *file)
{
	struct xpu_dev *xd = container_of(inode->i_cdev, struct xpu_dev, cdev);

	if (READ_ONCE(xd->removed))
		return -ENODEV;
	get_device(&xd->dev);
	atomic_inc(&xd->open_count);
	xpu_obj_inc(XPU_OBJ_FILES);
	file->private_data = xd;
	return 0;
}

static int xpu_release(struct inode *inode, struct file *file)
{
	struct xpu_dev *xd = file->private_data;

	atomic_dec(&xd->open_count);
	xpu_obj_dec(XPU_OBJ_FILES);
	put_device(&xd->dev);
	return 0;
}

/* What pcie_has_flr() says; that helper is private to the PCI core in the kernels we build for. */
static bool xpu_has_flr(struct pci_dev *pdev)
{
	u32 cap;

	if (pdev->dev_flags & PCI_DEV_FLAGS_NO_FLR_RESET || !pci_is_pcie(pdev))
		return false;
	if (pcie_capability_read_dword(pdev, PCI_EXP_DEVCAP, &cap))
		return false;
	return cap & PCI_EXP_DEVCAP_FLR;
}

static void xpu_fill_info(struct xpu_dev *xd, struct xpu_pci_ioc_info *info)
{
	struct pci_dev *pdev = xd->pdev;
	int i;

	memset(info, 0, sizeof(*info));
	info->uapi_version = XPU_PCI_UAPI_VERSION;
	info->index = xd->index;
	info->vendor = xd->vendor;
	info->device = xd->device;
	info->id_reg = xd->id_reg;
	mutex_lock(&xd->health_lock);
	info->health = xd->health;
	mutex_unlock(&xd->health_lock);
	info->numa_node = dev_to_node(&pdev->dev);
	if (xpu_has_flr(pdev))
		info->flags |= XPU_PCI_INFO_F_FLR;
	if (xd->is_edu)
		info->flags |= XPU_PCI_INFO_F_FACTORIAL;
	if (xd->msi)
		info->flags |= XPU_PCI_INFO_F_MSI;
	info->open_count = atomic_read(&xd->open_count);
	for (i = 0; i < 6; i++)
		info->bar_size[i] = pci_resource_len(pdev, i);
	strscpy(info->pci_addr, xd->addr, sizeof(info->pci_addr));
}

int xpu_do_reset(struct xpu_dev *xd)
{
	int r;

	down_read(&xd->hw_lock);
	if (xd->removed) {
		up_read(&xd->hw_lock);
		return -ENODEV;
	}
	/* the try variant: remove() holds the device lock while it waits for hw_lock */
	r = pci_try_reset_function(xd->pdev);
	up_read(&xd->hw_lock);
	return r;
}

int xpu_do_factorial(struct xpu_dev *xd, struct xpu_pci_factorial *f)
{
	unsigned long timeout;
	long left;
	int r = 0;

	if (!xd->is_edu)
		return -EOPNOTSUPP;
	if (f->flags || f->input > XPU_PCI_FACTORIAL_MAX || f->timeout_ms > XPU_PCI_TIMEOUT_MS_MAX)
		return -EINVAL;
	timeout = msecs_to_jiffies(f->timeout_ms ?: 1000);

	if (mutex_lock_interruptible(&xd->job_lock))
		return -EINTR;
	down_read(&xd->hw_lock);
	if (xd->removed || xd->irq < 0) {
		r = xd->removed ? -ENODEV : -EOPNOTSUPP;
		goto out;
	}
	xpu_obj_inc(XPU_OBJ_JOBS);
	if (ioread32(xd->mmio + EDU_REG_STATUS) & EDU_STATUS_COMPUTING) {
		/* a job we gave up on earlier is still running */
		r = -EBUSY;
		goto out_job;
	}
	WRITE_ONCE(xd->irq_status, 0);
	iowrite32(EDU_STATUS_IRQFACT, xd->mmio + EDU_REG_STATUS);
	iowrite32(f->input, xd->mmio + EDU_REG_FACTORIAL);
	left = wait_event_interruptible_timeout(xd->job_wq,
						(READ_ONCE(xd->irq_status) & EDU_IRQ_FACTORIAL) ||
						READ_ONCE(xd->removed), timeout);
	if (left < 0)
		r = -EINTR;
	else if (READ_ONCE(xd->removed))
		r = -ENODEV;
	else if (!left)
		r = -ETIMEDOUT;
	else
		f->result = ioread32(xd->mmio + EDU_REG_FACTORIAL);
out_job:
	xpu_obj_dec(XPU_OBJ_JOBS);
out:
	up_read(&xd->hw_lock);
	mutex_unlock(&xd->job_lock);
	return r;
}

static long xpu_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct xpu_dev *xd = file->private_data;
	void __user *uarg = (void __user *)arg;
	struct xpu_pci_factorial f;
	struct xpu_pci_ioc_info info;
	int r;

	if (READ_ONCE(xd->removed))
		return -ENODEV;
	switch (cmd) {
	case XPU_PCI_IOC_INFO:
		xpu_fill_info(xd, &info);
		return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
	case XPU_PCI_IOC_RESET:
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		return xpu_do_reset(xd);
	case XPU_PCI_IOC_FACTORIAL:
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		if (copy_from_user(&f, uarg, sizeof(f)))
			return -EFAULT;
		r = xpu_do_factorial(xd, &f);
		if (r)
			return r;
		return copy_to_user(uarg, &f, sizeof(f)) ? -EFAULT : 0;
	default:
		return -ENOTTY;
	}
}

const struct file_operations xpu_fops = {
	.owner = THIS_MODULE,
	.open = xpu_open,
	.release = xpu_release,
	.unlocked_ioctl = xpu_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};
