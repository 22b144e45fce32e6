// SPDX-License-Identifier: GPL-2.0-only
/*
 * xpu_pci: a small PCI driver for accelerators that have no vendor driver, so that the agent
 * and workloads can see, health-check and hand them out. This file: module init and exit, the
 * list of bound devices, and the object counters that the leak tests read from debugfs.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/version.h>

#include "xpu.h"

LIST_HEAD(xpu_devices);
DEFINE_MUTEX(xpu_devices_lock);
struct class *xpu_class;
dev_t xpu_devt;

bool xpu_fake_liveness_fail;
module_param_named(fake_liveness_fail, xpu_fake_liveness_fail, bool, 0644);
MODULE_PARM_DESC(fake_liveness_fail, "Testing: report every liveness probe as failed");

unsigned int xpu_liveness_ms = 1000;
static int liveness_ms_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int r = kstrtouint(val, 0, &v);

	if (r)
		return r;
	if (v < 10 || v > 3600000)
		return -ERANGE;
	*(unsigned int *)kp->arg = v;
	return 0;
}

static const struct kernel_param_ops liveness_ms_ops = {
	.set = liveness_ms_set,
	.get = param_get_uint,
};
module_param_cb(liveness_ms, &liveness_ms_ops, &xpu_liveness_ms, 0644);
MODULE_PARM_DESC(liveness_ms, "Period of the liveness probe in milliseconds (10..3600000)");

static atomic_t xpu_objects[__XPU_OBJ_MAX];
static const char *const xpu_obj_names[__XPU_OBJ_MAX] = {
	[XPU_OBJ_DEVICES] = "devices",
	[XPU_OBJ_FILES] = "files",
	[XPU_OBJ_JOBS] = "jobs",
};

void xpu_obj_inc(enum xpu_obj o)
{
	atomic_inc(&xpu_objects[o]);
}

void xpu_obj_dec(enum xpu_obj o)
{
	WARN_ON_ONCE(atomic_dec_return(&xpu_objects[o]) < 0);
}

static int objects_show(struct seq_file *m, void *v)
{
	int i;

	for (i = 0; i < __XPU_OBJ_MAX; i++)
		seq_printf(m, "%s %d\n", xpu_obj_names[i], atomic_read(&xpu_objects[i]));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(objects);

struct dentry *xpu_debugfs;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
static char *xpu_devnode(const struct device *dev, umode_t *mode)
#else
static char *xpu_devnode(struct device *dev, umode_t *mode)
#endif
{
	/* /dev/xpu/N; udev sets owner, group and mode (udev/60-xpu.rules) */
	return kasprintf(GFP_KERNEL, "xpu/%u", MINOR(dev->devt));
}

static int __init xpu_init(void)
{
	int r;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	xpu_class = class_create("xpu");
#else
	xpu_class = class_create(THIS_MODULE, "xpu");
#endif
	if (IS_ERR(xpu_class))
		return PTR_ERR(xpu_class);
	xpu_class->devnode = xpu_devnode;
	xpu_class->dev_groups = xpu_dev_groups;

	r = alloc_chrdev_region(&xpu_devt, 0, XPU_MAX_DEVICES, "xpu");
	if (r)
		goto err_class;
	r = xpu_genl_init();
	if (r)
		goto err_region;
	xpu_debugfs = debugfs_create_dir("xpu_pci", NULL);
	debugfs_create_file("objects", 0444, xpu_debugfs, NULL, &objects_fops);
	r = pci_register_driver(&xpu_pci_driver);
	if (r)
		goto err_genl;
	return 0;

err_genl:
	debugfs_remove_recursive(xpu_debugfs);
	xpu_genl_exit();
err_region:
	unregister_chrdev_region(xpu_devt, XPU_MAX_DEVICES);
err_class:
	class_destroy(xpu_class);
	return r;
}

static void __exit xpu_exit(void)
{
	int i;

	pci_unregister_driver(&xpu_pci_driver);
	debugfs_remove_recursive(xpu_debugfs);
	xpu_genl_exit();
	unregister_chrdev_region(xpu_devt, XPU_MAX_DEVICES);
	class_destroy(xpu_class);
	for (i = 0; i < __XPU_OBJ_MAX; i++)
		if (atomic_read(&xpu_objects[i]))
			pr_err("leaked %d %s objects\n", atomic_read(&xpu_objects[i]),
			       xpu_obj_names[i]);
}

module_init(xpu_init);
module_exit(xpu_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Driver for PCI accelerators without a vendor driver (xpud)");
MODULE_VERSION("0.1.0");
