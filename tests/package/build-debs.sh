#!/bin/sh
# Builds the Debian packages (xpud, libxpu0, libxpu-dev, xpu-pci-dkms) from this tree and checks
# them with lintian:
#
#   tests/package/build-debs.sh OUTDIR [VERSION]
#
# The tree (its tracked files and the untracked ones git does not ignore) is copied to a
# temporary directory, so the checkout gets no build outputs. Missing build dependencies
# (debian/control's Build-Depends) and lintian are installed with apt-get, which takes root.
# VERSION, when given, is the packages' version instead of debian/changelog's (a new changelog
# entry in the copy): an upgrade test builds the same tree twice, e.g. 0.1.0 and 0.1.0+1.
# Lintian's errors fail the script; its warnings are printed (the tree has none: each one is
# fixed or overridden in debian/*.lintian-overrides with the reason). The .deb files are left in
# OUTDIR (without the -dbgsym packages).
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 OUTDIR [VERSION]" >&2
	exit 1
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
version=${2:-}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

work=$(mktemp -d "${TMPDIR:-/tmp}/xpud-debs.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/xpud"
mkdir "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$top" ls-files -z --cached --others --exclude-standard |
		(cd "$top" && xargs -0 cp --parents -P -t "$src" --)
else
	tar -C "$top" --exclude='./build*' --exclude='./obj-*' -cf - . | tar -C "$src" -xf -
fi

cd "$src"
if [ -n "$version" ]; then
	maint=$(dpkg-parsechangelog -S Maintainer)
	dist=$(dpkg-parsechangelog -S Distribution)
	{
		printf 'xpud (%s) %s; urgency=medium\n\n' "$version" "$dist"
		printf '  * Built as version %s by tests/package/build-debs.sh.\n\n' "$version"
		printf ' -- %s  %s\n\n' "$maint" "$(date -R)"
		cat debian/changelog
	} >"$work/changelog"
	mv "$work/changelog" debian/changelog
fi

if ! dpkg-checkbuilddeps >/dev/null 2>&1 || ! command -v lintian >/dev/null 2>&1; then
	$sudo apt-get update -q
	$sudo apt-get build-dep -y -q --no-install-recommends ./
	$sudo apt-get install -y -q --no-install-recommends lintian
fi

dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1 || {
	tail -n 100 "$work/build.log" >&2
	echo "build-debs: dpkg-buildpackage failed (the last 100 lines above)" >&2
	exit 1
}
changes=$(ls "$work"/xpud_*.changes)
for deb in "$work"/*.deb; do
	echo "build-debs: built ${deb##*/}"
done

# lintian reads the overrides from the packages themselves (debian/*.lintian-overrides)
rc=0
lintian --fail-on error --tag-display-limit 0 "$changes" >"$work/lintian.log" 2>&1 || rc=$?
cat "$work/lintian.log"
if [ "$rc" -ne 0 ]; then
	echo "build-debs: lintian found errors" >&2
	exit 1
fi
# What the packages hold: the programs, units, rules and pages, and none of the test fakes or
# test programs.
contents() {
	dpkg-deb -c "$work/$1"_*.deb | awk '{ print $6 }' | sed 's|^\./|/|'
}
expect="/usr/sbin/xpud /usr/bin/xpuctl /usr/libexec/xpud/xpud-helper
/lib/systemd/system/xpud.service /lib/systemd/system/xpud.socket /lib/udev/rules.d/60-xpu.rules
/usr/lib/sysusers.d/xpud.conf /usr/lib/tmpfiles.d/xpud.conf /etc/xpud/xpud.yaml
/usr/share/man/man8/xpud.8.gz /usr/share/man/man1/xpuctl.1.gz /usr/share/man/man5/xpud.yaml.5.gz
/usr/share/bash-completion/completions/xpuctl"
for f in $expect; do
	contents xpud | grep -qx "$f" || { echo "build-debs: xpud lacks $f" >&2; exit 1; }
done
contents libxpu0 | grep -q '/libxpu\.so\.0$' || { echo "build-debs: no libxpu.so.0" >&2; exit 1; }
contents xpu-pci-dkms | grep -q '^/usr/src/xpu-pci-.*/dkms\.conf$' ||
	{ echo "build-debs: no dkms.conf" >&2; exit 1; }
for p in xpud libxpu0 libxpu-dev xpu-pci-dkms; do
	if contents "$p" | grep -E 'libnvidia-ml|libcuda|libxrt|/sim/|mkfixture|/test-|fake'; then
		echo "build-debs: $p holds test files (above)" >&2
		exit 1
	fi
done

# the packages, not their -dbgsym companions
for deb in "$work"/*.deb; do
	case $deb in
	*-dbgsym_*) ;;
	*) cp "$deb" "$out/" ;;
	esac
done
echo "build-debs: the packages are in $out"
