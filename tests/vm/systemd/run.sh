#!/bin/sh
# xpud's Debian packages under a real systemd: a Debian 12 guest in QEMU (TCG, no KVM needed)
# boots its own kernel and initrd with systemd as PID 1, installs the packages with
# "apt-get install ./*.deb" (xpu_pci is built by DKMS in the guest, for the guest's kernel), and
# runs every checks/*.sh in name order (see guest.sh). QEMU's edu device, behind a PCIe root
# port on NUMA node 1 of the test boot's two, is the accelerator xpu_pci drives.
#
# Phases, each timed: the packages (tests/package/build-debs.sh), the root file system
# (mmdebstrap fetches the packages, dpkg unpacks them on the host without running any of their
# scripts; a first boot into a busybox initramfs configures them inside the guest,
# setup-init.sh), the boot, the install with DKMS, the checks.
#
# Exit status: 0 all checks passed, 1 a check failed or the guest crashed or timed out.
# Environment: XPU_VM_TIMEOUT (s, per boot, default 900), XPU_VM_KEEP=1 keeps the work directory,
# XPU_VM_ROOTFS_CACHE=DIR keeps the configured root file system in DIR and reuses it while the
# package list and the setup files are the same (nothing is cached without it),
# XPU_VM_DEBS=DIR uses the .deb files of DIR instead of building them.
set -eu
cd "$(dirname "$0")/../../.."
here=tests/vm/systemd
timeout_s=${XPU_VM_TIMEOUT:-900}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# the host's tools, by the commands this script runs (busybox: the static one, for the initramfs)
need=""
for c in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 mke2fs:e2fsprogs \
	debugfs:e2fsprogs dpkg-deb:dpkg python3:python3; do
	PATH="$PATH:/sbin:/usr/sbin" command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c#*:}"
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need="$need busybox-static"
if [ -n "$need" ]; then
	$sudo apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $need
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/xpu-vm-systemd.XXXXXX")
[ "${XPU_VM_KEEP:-0}" = 1 ] || trap '$sudo rm -rf "$work"' EXIT
echo "== work directory $work"

t0=$(date +%s)
tp=$t0
times=""
phase() { # phase NAME [SECONDS]: the time of a phase, measured here or given by the guest
	now=$(date +%s)
	s=${2:-$((now - tp))}
	tp=$now
	times="$times$(printf '%-28s %4ss' "$1" "$s")
"
	echo "== phase $1: ${s}s"
}

# --- the packages under test
if [ -n "${XPU_VM_DEBS:-}" ]; then
	mkdir -p "$work/debs"
	cp "$XPU_VM_DEBS"/*.deb "$work/debs/"
else
	echo "== building the packages"
	tests/package/build-debs.sh "$work/debs"
fi
ls "$work/debs"
phase "packages (build-debs.sh)"

# --- the root file system: Debian 12 with systemd, apt, DKMS and the kernel with its headers,
# and whatever our packages depend on or recommend (the guest has no network)
mirror=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
	[ -r "$f" ] || continue
	case $f in
	*.sources) mirror=$(awk '/^URIs:/ { print $2; exit }' "$f") ;;
	*) mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' "$f") ;;
	esac
	[ -n "$mirror" ] && break
done
mirror=${mirror:-http://deb.debian.org/debian}
ours=$(for d in "$work"/debs/*.deb; do dpkg-deb -f "$d" Package; done)
deps=$(for d in "$work"/debs/*.deb; do
	for f in Pre-Depends Depends Recommends; do dpkg-deb -f "$d" "$f"; done
done |
	tr ',' '\n' | sed 's/|.*//; s/(.*//; s/:any//; s/[[:space:]]//g' | grep . | sort -u |
	grep -vxF "$ours" | tr '\n' ',')
include="systemd-sysv,dbus,udev,apt,kmod,linux-image-amd64,linux-headers-amd64,dkms,gcc,make"
include="$include,libc6-dev,$deps"
echo "== root file system: bookworm from $mirror, with $include"
key=$( (echo "$mirror $include"; cat "$here/setup-init.sh" "$here/setup-done.sh" \
	"$here/xpu-guest.service" "$here/initramfs-hook.sh") | sha256sum | cut -c1-16)
cache=${XPU_VM_ROOTFS_CACHE:-}
if [ -n "$cache" ] && [ -s "$cache/rootfs-$key.img" ]; then
	echo "== reusing $cache/rootfs-$key.img"
	cp --sparse=always "$cache/rootfs-$key.img" "$work/root.img"
	cp "$cache/rootfs-$key.vmlinuz" "$work/vmlinuz"
	cp "$cache/rootfs-$key.initrd" "$work/initrd"
	phase "rootfs (cached)"
else
	tree="$work/tree"
	# merged /usr from the start (Debian 12's layout), so that usrmerge has nothing to convert
	# shellcheck disable=SC2016 # mmdebstrap's hook gets the tree as $1
	$sudo mmdebstrap --mode=chrootless --variant=extract --skip=cleanup/apt/cache \
		--setup-hook='for d in bin sbin lib lib64; do mkdir -p "$1/usr/$d"; ln -s "usr/$d" "$1/$d"; done' \
		--include='?priority(required)' --include="$include" \
		bookworm "$tree" "$mirror" >"$work/mmdebstrap.log" 2>&1 ||
		{ tail -n 30 "$work/mmdebstrap.log"; exit 1; }
	# dpkg unpacks every package into the tree here, natively (under TCG that alone took 13
	# minutes): its preinst scripts taken out and kept for the guest, so that no package's
	# script runs on the host (dpkg chroots only to run one); the guest runs them and
	# configures everything (setup-init.sh)
	pre="$tree/var/lib/xpu-guest/preinst"
	$sudo mkdir -p "$pre" "$work/unpack"
	for d in "$tree"/var/cache/apt/archives/*.deb; do
		p=$(dpkg-deb -f "$d" Package)
		if dpkg-deb --info "$d" preinst >/dev/null 2>&1; then
			dpkg-deb --info "$d" preinst | $sudo install -m 0755 /dev/stdin "$pre/$p"
			# the same package with a control archive without preinst (the data untouched)
			x="$work/unpack/x"
			rm -rf "$x"
			mkdir -p "$x/control"
			(cd "$x" && ar x "$d" && tar -C control -xf control.tar.* && rm control.tar.* &&
				rm control/preinst && tar -C control -cJf control.tar.xz --owner=0 \
				--group=0 . && ar rc "../${d##*/}" debian-binary control.tar.xz data.tar.*)
		else
			ln -s "$d" "$work/unpack/${d##*/}"
		fi
	done
	$sudo dpkg --root="$tree" --force-depends --force-unsafe-io --no-triggers \
		--unpack "$work"/unpack/*.deb >"$work/unpack.log" 2>&1 ||
		{ tail -n 30 "$work/unpack.log"; exit 1; }
	$sudo rm -rf "$work/unpack"
	kver=$(ls "$tree/lib/modules")
	echo "== kernel $kver"
	$sudo install -D -m 0644 "$here/xpu-guest.service" "$tree/etc/systemd/system/xpu-guest.service"
	$sudo install -D -m 0755 "$here/setup-done.sh" "$tree/usr/lib/xpu-guest/setup-done"
	$sudo depmod -b "$tree" "$kver"
	# Shortcuts for the setup boot under TCG, where every byte written is slow: no
	# documentation, manual pages or translations (setup-done.sh drops this before the test),
	# and an initrd with only the modules that reach the root file system.
	printf 'path-exclude=/usr/share/%s/*\n' doc man info locale |
		$sudo install -D -m 0644 /dev/stdin "$tree/etc/dpkg/dpkg.cfg.d/xpu-guest-setup"
	printf 'MODULES=list\n' |
		$sudo install -D -m 0644 /dev/stdin "$tree/etc/initramfs-tools/conf.d/xpu-guest"
	$sudo install -D -m 0755 "$here/initramfs-hook.sh" "$tree/etc/initramfs-tools/hooks/xpu-guest"
	phase "rootfs: extract (host)"

	# the first boot's initramfs: busybox, and the modules that reach an ext4 on virtio-blk
	ird="$work/setup-initramfs"
	mkdir -p "$ird/bin" "$ird/lib/modules" "$ird/etc" "$ird/proc" "$ird/sys" "$ird/dev" \
		"$ird/tmp" "$ird/newroot"
	cp /bin/busybox "$ird/bin/busybox"
	for a in $("$ird/bin/busybox" --list); do
		[ -e "$ird/bin/$a" ] || ln -s busybox "$ird/bin/$a"
	done
	cp "$here/setup-init.sh" "$ird/init"
	chmod 0755 "$ird/init"
	modprobe=$(PATH="$PATH:/sbin:/usr/sbin" command -v modprobe)
	for m in virtio_pci virtio_blk ext4; do
		"$modprobe" -d "$tree" -S "$kver" --show-depends "$m"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
		cp "$ko" "$ird/lib/modules/"
		basename "$ko"
	done >"$ird/etc/modules-order"
	python3 tests/vm/drive.py initramfs "$ird" "$work/setup.cpio"
	cp "$tree/boot/vmlinuz-$kver" "$work/vmlinuz"
	$sudo mke2fs -q -t ext4 -L xpu-root -d "$tree" "$work/root.img" 4G
	$sudo chown "$(id -u)" "$work/root.img"
	$sudo rm -rf "$tree"
	phase "rootfs: image (host)"

	echo "== setup boot: dpkg installs the root file system's packages in the guest"
	timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -m 2048 \
		-smp 2 -display none -monitor none -serial stdio -no-reboot \
		-kernel "$work/vmlinuz" -initrd "$work/setup.cpio" \
		-append "console=ttyS0 loglevel=4 panic=-1" \
		-drive "file=$work/root.img,format=raw,if=virtio,cache=unsafe" </dev/null |
		sed -u 's/\r$//' | tee "$work/setup.log"
	grep -q "^@@SETUP ok" "$work/setup.log" || { echo "the setup boot failed" >&2; exit 1; }
	# the initrd that the kernel's package made in the guest (update-initramfs), read from the
	# image without mounting it
	debugfs -R "dump /boot/initrd.img-$kver $work/initrd" "$work/root.img" 2>/dev/null
	[ -s "$work/initrd" ] || { echo "the guest made no initrd for $kver" >&2; exit 1; }
	phase "rootfs: dpkg (guest)"
	if [ -n "$cache" ]; then
		mkdir -p "$cache"
		cp --sparse=always "$work/root.img" "$cache/rootfs-$key.img.new"
		cp "$work/vmlinuz" "$cache/rootfs-$key.vmlinuz"
		cp "$work/initrd" "$cache/rootfs-$key.initrd"
		mv "$cache/rootfs-$key.img.new" "$cache/rootfs-$key.img"
	fi
fi

# --- the test's own disk: the packages, guest.sh, lib.sh and the checks
td="$work/test"
mkdir -p "$td/debs" "$td/checks"
cp "$work"/debs/*.deb "$td/debs/"
cp "$here/guest.sh" "$here/lib.sh" "$td/"
cp "$here"/checks/*.sh "$td/checks/"
mke2fs -q -t ext4 -L xpu-test -d "$td" "$work/test.img" 256M

# Two NUMA nodes, one CPU and 1 GiB each, and the edu device's root port on a PCIe expander
# bridge bound to node 1: the firmware gives the bridge that node (_PXM), so the device's
# numa_node is 1 and its local_cpulist "1", and "xpuctl run --numa-local" (AllowedCPUs=,
# AllowedMemoryNodes=) has a node to confine to (checks/50-xpuctl-run.sh). The device is then at
# 0000:11:00.0 (the bridge's bus 16, its root port's bus 17); the checks look it up (lib.sh).
# The disks name pcie.0: "if=virtio" would put them on the bridge's bus, which takes only bridges.
echo "== test boot"
timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -m 2048 -smp 2 \
	-object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G \
	-numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1 \
	-display none -monitor none -serial stdio -no-reboot \
	-kernel "$work/vmlinuz" -initrd "$work/initrd" \
	-append "root=/dev/vda rw console=ttyS0 loglevel=4 panic=-1 systemd.show_status=error" \
	-drive "file=$work/root.img,format=raw,if=none,id=root,cache=unsafe" \
	-device virtio-blk-pci,drive=root,bus=pcie.0 \
	-drive "file=$work/test.img,format=raw,if=none,id=test,cache=unsafe" \
	-device virtio-blk-pci,drive=test,bus=pcie.0 \
	-device pxb-pcie,id=pxb1,bus_nr=16,numa_node=1,bus=pcie.0 \
	-device pcie-root-port,id=rp1,bus=pxb1,chassis=1,slot=1 -device edu,id=edu0,bus=rp1 \
	</dev/null | sed -u 's/\r$//' | tee "$work/test.log" || true
for p in boot install checks; do
	s=$(sed -n "s/^@@PHASE $p \([0-9]*\)$/\1/p" "$work/test.log")
	[ -n "$s" ] && phase "guest: $p" "$s"
done
echo "== phases"
printf '%s' "$times"
echo "total                        $(($(date +%s) - t0))s"

result=$(grep "^@@RESULT" "$work/test.log" || true)
grep "^FAIL " "$work/test.log" | sed 's/^/guest test: /' || true
if [ -z "$result" ]; then
	echo "guest test: the guest ended without a result (crash, panic or timeout?)"
	exit 1
fi
echo "guest test: $result"
case $result in
*" fail=0") grep -q "^PASS " "$work/test.log" ;;
*) exit 1 ;;
esac
