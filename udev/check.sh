#!/bin/sh
# Syntax check of the udev rules: `udevadm verify` where udev has it (systemd >= 253), else the
# rules are parsed by `udevadm test` from a temporary copy in /run/udev/rules.d (root only),
# and any complaint about them other than the build host lacking group "xpu" fails.
set -eu
rules="$(dirname "$0")/60-xpu.rules"
command -v udevadm >/dev/null || { echo "udev check: no udevadm, skipped"; exit 0; }
if udevadm verify --help >/dev/null 2>&1; then
	exec udevadm verify "$rules"
fi
[ "$(id -u)" -eq 0 ] || { echo "udev check: needs root on this udev version, skipped"; exit 0; }
copy=/run/udev/rules.d/99-xpu-check-$$.rules
mkdir -p /run/udev/rules.d
cp "$rules" "$copy"
out=$(udevadm test /sys/class/mem/null 2>&1 | grep -F "$copy" || true)
rm -f "$copy"
echo "$out" | grep -q "Reading rules file" || { echo "udev check: rules not read"; exit 1; }
bad=$(echo "$out" | grep -v "Reading rules file" | grep -v "Unknown group 'xpu'" || true)
if [ -n "$bad" ]; then
	echo "$bad"
	exit 1
fi
echo "udev check: 60-xpu.rules parsed cleanly"
