// SPDX-License-Identifier: GPL-2.0-only
/*
 * Attributes of the class device /sys/class/xpu/xpuN. They report cached or PCI-core state
 * only and never touch the device's registers, so reading them cannot hang on a dead device.
 */
#include <linux/pci.h>
#include <linux/sysfs.h>

#include "xpu.h"

static struct xpu_dev *to_xd(struct device *dev)
{
	return container_of(dev, struct xpu_dev, dev);
}

static const char *health_name(enum xpu_pci_health h)
{
	switch (h) {
	case XPU_PCI_HEALTH_OK:
		return "healthy";
	case XPU_PCI_HEALTH_UNHEALTHY:
		return "unhealthy";
	case XPU_PCI_HEALTH_REMOVED:
		return "removed";
	default:
		return "unknown";
	}
}

static ssize_t health_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct xpu_dev *xd = to_xd(dev);
	ssize_t n;

	mutex_lock(&xd->health_lock);
	n = sysfs_emit(buf, "%s\n", health_name(xd->health));
	mutex_unlock(&xd->health_lock);
	return n;
}
static DEVICE_ATTR_RO(health);

static ssize_t health_reason_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct xpu_dev *xd = to_xd(dev);
	ssize_t n;

	mutex_lock(&xd->health_lock);
	n = sysfs_emit(buf, "%s\n", xd->health_reason);
	mutex_unlock(&xd->health_lock);
	return n;
}
static DEVICE_ATTR_RO(health_reason);

static ssize_t id_register_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct xpu_dev *xd = to_xd(dev);

	if (!xd->is_edu)
		return -ENODATA;
	return sysfs_emit(buf, "0x%08x\n", xd->id_reg);
}
static DEVICE_ATTR_RO(id_register);

static ssize_t pci_address_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%s\n", to_xd(dev)->addr);
}
static DEVICE_ATTR_RO(pci_address);

static ssize_t bar_sizes_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct pci_dev *pdev = to_xd(dev)->pdev;
	ssize_t n = 0;
	int i;

	for (i = 0; i < PCI_STD_NUM_BARS; i++)
		n += sysfs_emit_at(buf, n, "%s%llu", i ? " " : "",
				   (unsigned long long)pci_resource_len(pdev, i));
	n += sysfs_emit_at(buf, n, "\n");
	return n;
}
static DEVICE_ATTR_RO(bar_sizes);

static ssize_t numa_node_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%d\n", dev_to_node(&to_xd(dev)->pdev->dev));
}
static DEVICE_ATTR_RO(numa_node);

static ssize_t link_show(struct device *dev, struct device_attribute *a, char *buf)
{
	static const char *const speeds[] = { "?", "2.5", "5.0", "8.0", "16.0", "32.0", "64.0" };
	struct pci_dev *pdev = to_xd(dev)->pdev;
	u16 st;

	if (!pci_is_pcie(pdev))
		return sysfs_emit(buf, "none\n");
	if (pcie_capability_read_word(pdev, PCI_EXP_LNKSTA, &st) || st == 0xffff)
		return -EIO;
	return sysfs_emit(buf, "%s GT/s x%u\n",
			  speeds[min_t(unsigned int, st & PCI_EXP_LNKSTA_CLS, ARRAY_SIZE(speeds) - 1)],
			  (st & PCI_EXP_LNKSTA_NLW) >> PCI_EXP_LNKSTA_NLW_SHIFT);
}
static DEVICE_ATTR_RO(link);

static ssize_t open_count_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&to_xd(dev)->open_count));
}
static DEVICE_ATTR_RO(open_count);

static ssize_t liveness_failures_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&to_xd(dev)->liveness_failures));
}
static DEVICE_ATTR_RO(liveness_failures);

static ssize_t interrupts_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&to_xd(dev)->irq_count));
}
static DEVICE_ATTR_RO(interrupts);

static ssize_t aer_counts_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct xpu_dev *xd = to_xd(dev);

	return sysfs_emit(buf, "nonfatal %lld\nfatal %lld\n",
			  (long long)atomic64_read(&xd->aer[0]),
			  (long long)atomic64_read(&xd->aer[1]));
}
static DEVICE_ATTR_RO(aer_counts);

static struct attribute *xpu_dev_attrs[] = {
	&dev_attr_health.attr,
	&dev_attr_health_reason.attr,
	&dev_attr_id_register.attr,
	&dev_attr_pci_address.attr,
	&dev_attr_bar_sizes.attr,
	&dev_attr_numa_node.attr,
	&dev_attr_link.attr,
	&dev_attr_open_count.attr,
	&dev_attr_liveness_failures.attr,
	&dev_attr_interrupts.attr,
	&dev_attr_aer_counts.attr,
	NULL,
};

static const struct attribute_group xpu_dev_group = {
	.attrs = xpu_dev_attrs,
};

const struct attribute_group *xpu_dev_groups[] = {
	&xpu_dev_group,
	NULL,
};
