#!/bin/sh
# xpu-pci-dkms's maintainer scripts, run for real by DKMS, in a private mount namespace: the
# host's /var/lib/dkms, /usr/src and /lib/modules are overlaid by temporary directories, so
# nothing of the host changes.
#
#   tests/package/check-dkms.sh XPU_PCI_DKMS_DEB
#
# - postinst (configure) adds the module to DKMS, builds and installs xpu_pci.ko for each kernel
#   DKMS picks that has headers, says "skipped since the kernel headers ... do not seem to be
#   installed" for one that has none (a fake kernel 99.0.0-xpu-noheaders is added), and exits 0:
#   the package is installed.
# - prerm (remove) takes the module out of DKMS and /lib/modules again.
# Needs root, unshare and overlayfs, dkms, and the headers of a kernel (linux-headers-amd64);
# exits 77 without them.
set -eu

fake=99.0.0-xpu-noheaders

if [ "${1:-}" = --inside ]; then
	tmp=$2
	mount --bind "$tmp/dkms" /var/lib/dkms
	mount -t overlay overlay -o "lowerdir=/lib/modules,upperdir=$tmp/modules,workdir=$tmp/w1" \
		/lib/modules
	mount -t overlay overlay -o "lowerdir=/usr/src,upperdir=$tmp/pkg/usr/src,workdir=$tmp/w2" \
		/usr/src
	mkdir "/lib/modules/$fake"
	rc=0
	sh -e "$tmp/control/postinst" configure >"$tmp/postinst.log" 2>&1 || rc=$?
	cat "$tmp/postinst.log"
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: postinst configure: exit status $rc" >&2
		exit 1
	fi
	grep -q "Module build for kernel $fake was skipped since the" "$tmp/postinst.log" || {
		echo "FAIL: postinst did not say that $fake has no headers" >&2
		exit 1
	}
	built=0
	sed -n 's/^Building initial module for //p' "$tmp/postinst.log" >"$tmp/kernels"
	while read -r k; do
		[ -f "/lib/modules/$k/updates/dkms/xpu_pci.ko" ] || {
			echo "FAIL: no xpu_pci.ko installed for $k" >&2
			exit 1
		}
		dkms status -m xpu-pci -k "$k" | grep -q ': installed' || {
			echo "FAIL: dkms status for $k: $(dkms status -m xpu-pci -k "$k")" >&2
			exit 1
		}
		modinfo -F version "/lib/modules/$k/updates/dkms/xpu_pci.ko" >"$tmp/version"
		echo "installed for $k: xpu_pci.ko version $(cat "$tmp/version")"
		built=$((built + 1))
	done <"$tmp/kernels"
	if [ "$built" -eq 0 ]; then
		echo "no kernel that DKMS built for had headers" >&2
		exit 77
	fi
	sh -e "$tmp/control/prerm" remove
	if [ -n "$(dkms status -m xpu-pci)" ] ||
		find /lib/modules -name 'xpu_pci.ko*' -path '*/updates/*' | grep -q .; then
		echo "FAIL: prerm remove left the module: $(dkms status -m xpu-pci)" >&2
		exit 1
	fi
	echo "prerm remove: the module is gone from DKMS and /lib/modules"
	exit 0
fi

[ $# -eq 1 ] || {
	echo "usage: $0 XPU_PCI_DKMS_DEB" >&2
	exit 2
}
deb=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null || ! command -v dkms >/dev/null ||
	! grep -qw overlay /proc/filesystems || ! ls /lib/modules/*/build/Makefile >/dev/null 2>&1; then
	echo "needs root, unshare, overlayfs, dkms and kernel headers; skipping" >&2
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xpu-dkms.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/dkms" "$tmp/modules" "$tmp/w1" "$tmp/w2"
dpkg-deb -x "$deb" "$tmp/pkg"
dpkg-deb -e "$deb" "$tmp/control"
unshare -m --propagation private "$0" --inside "$tmp"
