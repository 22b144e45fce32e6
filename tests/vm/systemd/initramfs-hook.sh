#!/bin/sh
# /etc/initramfs-tools/hooks/xpu-guest in the guest (with MODULES=list, see run.sh): the initrd
# holds only the modules that reach the root file system on virtio-blk.
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk ext4
