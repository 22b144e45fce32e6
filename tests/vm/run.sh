#!/bin/sh
# The xpu_pci kernel module tested in a QEMU virtual machine (see kmod/README.md):
# Debian's packaged kernel, the module built against the matching headers, an initramfs with
# busybox, xpud, xpuctl and tests/vm/xpu-vmcheck, and QEMU's edu device behind a PCIe root port;
# and two DRM devices with the drivers of Debian's kernel, for the DRM backend's libdrm lister
# (tests/vm/xpu-vmdrm): the standard VGA (bochs: a primary node only) and a virtio-gpu (virtio_gpu:
# a primary and a render node).
# Exit status: 0 all checks passed, 1 a check failed or the guest crashed or timed out.
# Environment: XPU_VM_TIMEOUT (s, default 600), XPU_VM_LOAD_CYCLES (100), XPU_VM_REPLUG_CYCLES
# (100), XPU_VM_QMP_CYCLES (100), XPU_VM_FUZZ_SECONDS (20), XPU_VM_FUZZ_SEED (time), XPU_VM_KEEP=1
# keeps the work directory.
set -eu
cd "$(dirname "$0")/../.."
src=$(pwd)

pkgs="qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static libnl-genl-3-dev
libdrm-dev kmod python3 build-essential cmake pkg-config"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update
	# image and headers in one step: the archive moves to new versions between two calls
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
fi
./tests/deps.sh

# The newest kernel that has both an image and headers.
kver=""
for b in $(ls -d /lib/modules/*/build 2>/dev/null | sort -V); do
	v=$(basename "$(dirname "$b")")
	[ -r "/boot/vmlinuz-$v" ] && kver=$v
done
[ -n "$kver" ] || { echo "no kernel with both image and headers" >&2; exit 1; }
echo "== kernel $kver"

work=$(mktemp -d "${TMPDIR:-/tmp}/xpu-vm.XXXXXX")
[ "${XPU_VM_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

echo "== building xpu_pci.ko (W=1, warnings are errors)"
mkdir -p "$work/kmod/include/xpu/uapi"
cp kmod/*.c kmod/*.h kmod/Kbuild "$work/kmod/"
cp include/xpu/uapi/xpu_pci.h "$work/kmod/include/xpu/uapi/"
make -s -C "/lib/modules/$kver/build" M="$work/kmod" W=1 modules >"$work/kmod.log" 2>&1 ||
	{ cat "$work/kmod.log"; exit 1; }
if grep -E "warning:|error:" "$work/kmod.log"; then
	echo "kmod: the build has warnings" >&2
	exit 1
fi

echo "== building xpud, xpud-helper, xpuctl and the guest checks"
cmake -S . -B build-vm -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXPU_TESTS=OFF >/dev/null
cmake --build build-vm -j"$(nproc)" --target xpud xpud-helper xpuctl xpu-vmdrm >/dev/null
cc -static -O2 -Wall -Wextra -Werror -Wno-sign-compare -Iinclude -o "$work/xpu-vmcheck" \
	tests/vm/xpu-vmcheck.c

echo "== initramfs"
root="$work/root"
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/lib/modules" \
	"$root/etc" "$root/proc" "$root/sys" "$root/tmp" "$root/run"
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done
cp tests/vm/init.sh "$root/init"
cp "$work/kmod/xpu_pci.ko" "$root/lib/modules/"
cp "$work/xpu-vmcheck" "$root/bin/"
cp build-vm/xpud build-vm/xpud-helper "$root/usr/sbin/" # the helper: found next to xpud
cp build-vm/xpuctl build-vm/xpu-vmdrm "$root/usr/bin/"
# the dynamic programs' libraries (libdrm among them), at the paths the loader looks for them
for lib in $(for b in build-vm/xpud build-vm/xpud-helper build-vm/xpuctl build-vm/xpu-vmdrm; do
	ldd "$b" | awk '/=> \//{ print $3 } /^[ \t]*\//{ print $1 }'
done | sort -u); do
	case $lib in
	*build-vm*) mkdir -p "$root/usr/lib/x86_64-linux-gnu" && cp -L "$lib" "$root/usr/lib/x86_64-linux-gnu/" ;;
	*) mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib" ;;
	esac
done
# the DRM drivers and what they need, in the order they load (/etc/xpu-vm-drm lists them)
modprobe=$(PATH="$PATH:/sbin:/usr/sbin" command -v modprobe)
mkdir -p "$root/lib/modules/drm"
for m in virtio_pci bochs virtio_gpu; do
	"$modprobe" -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
	cp "$ko" "$root/lib/modules/drm/"
	basename "$ko"
done >"$root/etc/xpu-vm-drm"
cat >"$root/etc/xpu-vm.conf" <<CONF
LOAD_CYCLES=${XPU_VM_LOAD_CYCLES:-100}
REPLUG_CYCLES=${XPU_VM_REPLUG_CYCLES:-100}
QMP_CYCLES=${XPU_VM_QMP_CYCLES:-100}
FUZZ_SECONDS=${XPU_VM_FUZZ_SECONDS:-20}
FUZZ_SEED=${XPU_VM_FUZZ_SEED:-$(date +%s)}
CONF
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
python3 tests/vm/drive.py initramfs "$root" "$work/initrd.cpio"

echo "== booting"
start=$(date +%s)
rc=0
python3 tests/vm/drive.py boot "/boot/vmlinuz-$kver" "$work/initrd.cpio" "$work/qmp.sock" \
	"${XPU_VM_TIMEOUT:-600}" || rc=$?
echo "== VM test took $(($(date +%s) - start))s in the guest, exit $rc"
exit $rc
