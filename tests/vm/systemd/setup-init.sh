#!/bin/sh
# /init of the busybox initramfs that configures the guest's root file system once (see run.sh):
# the packages that dpkg only unpacked on the host (without their preinst scripts) get their
# preinst and postinst scripts run inside the guest, so that no package's script ever runs on
# the host. Prints "@@SETUP ok" or "@@SETUP failed".
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r ko; do
	insmod "/lib/modules/$ko" 2>/dev/null # crc32c-intel needs SSE4.2: its generic twin loads
done </etc/modules-order
for _ in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
mkdir -p /newroot
mount -t ext4 /dev/vda /newroot || { echo "@@SETUP failed: no root file system"; poweroff -f; }
for d in proc sys dev; do mount --bind /$d /newroot/$d; done
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run

# dpkg orders the configuration itself. INITRD=No: the kernel's package leaves the initrd to one
# update-initramfs at the end (else it is made twice, 90 s each under TCG). The progress goes to
# the console, each line with the guest's uptime.
start=$(cut -d' ' -f1 /proc/uptime)
stamp() { # the lines worth seeing, as they come (a grep would hold them in its buffer)
	while read -r l; do
		case $l in
		"Setting up "* | "Processing triggers"* | update-initramfs* | "dpkg: error"* | E:* | @@*)
			echo "[$(cut -d' ' -f1 /proc/uptime)] $l" ;;
		esac
	done
}
chroot /newroot /bin/sh -c '
	export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
	cd /var/lib/xpu-guest/preinst && for p in base-passwd $(ls | grep -vx base-passwd); do
		echo "Setting up $p (preinst install)"
		DPKG_MAINTSCRIPT_PACKAGE=$p DPKG_MAINTSCRIPT_NAME=preinst \
			DPKG_MAINTSCRIPT_ARCH=$(dpkg-query -W -f="\${Architecture}" "$p") ./$p install ||
			exit 1
	done && cd / && rm -r /var/lib/xpu-guest/preinst &&
	INITRD=No dpkg --configure -a --force-unsafe-io && apt-get clean &&
	update-initramfs -c -k "$(ls /lib/modules)" && /usr/lib/xpu-guest/setup-done &&
	echo "@@SETUP dpkg ok"' 2>&1 | tee /newroot/var/log/xpu-setup.log | stamp
if grep -q "^@@SETUP dpkg ok" /newroot/var/log/xpu-setup.log; then
	echo "dpkg took $(($(cut -d' ' -f1 /proc/uptime | cut -d. -f1) - ${start%.*}))s in the guest"
	res=ok
else
	tail -n 30 /newroot/var/log/xpu-setup.log
	res=failed
fi
for d in run tmp dev sys proc; do umount /newroot/$d; done
umount /newroot
sync
echo "@@SETUP $res"
poweroff -f
