#!/bin/sh
# The shipped units, statically (ctest test-systemd-unit): "systemd-analyze verify" of
# xpud.service and xpud.socket says nothing (it only warns on unknown keys and bad values, so any
# output fails), and "systemd-analyze security --offline=yes" scores xpud.service 3.0 or lower.
# Each check is shown to fail once on a planted defect (a bad value; the sandboxing settings
# removed). Exit 77 (skip) without systemd-analyze.
#   check-unit.sh SOURCE_DIR
set -eu
src=${1:-$(dirname "$0")/../../..}
command -v systemd-analyze >/dev/null 2>&1 || { echo "no systemd-analyze: skipped"; exit 77; }
[ -d /lib/systemd/system ] || { echo "no systemd units to verify against: skipped"; exit 77; }
max=3.0

work=$(mktemp -d "${TMPDIR:-/tmp}/xpu-unit.XXXXXX")
trap 'rm -rf "$work"' EXIT
# a root with systemd's own units and stubs of the commands the unit runs (verify checks that
# they are executable)
mkdir -p "$work/tree/usr/lib/systemd" "$work/tree/etc/systemd/system" "$work/tree/usr/sbin" \
	"$work/tree/usr/bin"
cp -a /lib/systemd/system "$work/tree/usr/lib/systemd/"
for c in usr/sbin/xpud usr/bin/xpuctl; do
	printf '#!/bin/sh\n' >"$work/tree/$c"
	chmod 0755 "$work/tree/$c"
done

verify() { # verify SERVICE_FILE: systemd-analyze verify's output for it and the socket
	cp "$1" "$work/tree/etc/systemd/system/xpud.service"
	cp "$src/systemd/xpud.socket" "$work/tree/etc/systemd/system/xpud.socket"
	systemd-analyze verify --root="$work/tree" xpud.service xpud.socket 2>&1 || true
}
score() { # score SERVICE_FILE: the overall exposure systemd-analyze gives it
	cp "$1" "$work/xpud.service"
	systemd-analyze security --offline=yes "$work/xpud.service" 2>&1 |
		sed -n 's/^.*Overall exposure level for xpud.service: \([0-9.]*\).*$/\1/p'
}
above() { awk -v s="$1" -v m="$max" 'BEGIN { exit !(s > m) }'; }

rc=0
out=$(verify "$src/systemd/xpud.service")
if [ -n "$out" ]; then
	echo "FAIL: systemd-analyze verify:"
	echo "$out"
	rc=1
else
	echo "ok: systemd-analyze verify says nothing of xpud.service and xpud.socket"
fi
s=$(score "$src/systemd/xpud.service")
if [ -z "$s" ] || above "$s" "$max"; then
	echo "FAIL: systemd-analyze security: exposure '${s}', more than $max"
	systemd-analyze security --offline=yes "$work/xpud.service" 2>&1 | grep -v "✓" || true
	rc=1
else
	echo "ok: systemd-analyze security --offline=yes: exposure $s (at most $max)"
fi

# the proof that each check can fail
sed 's/^ProtectHome=yes$/ProtectHome=bogus/' "$src/systemd/xpud.service" >"$work/bad.service"
if [ -z "$(verify "$work/bad.service")" ]; then
	echo "FAIL: verify says nothing of ProtectHome=bogus"
	rc=1
fi
grep -vE '^(Protect|Private|Restrict|SystemCall|CapabilityBoundingSet|DeviceAllow|DevicePolicy)' \
	"$src/systemd/xpud.service" >"$work/bare.service"
s=$(score "$work/bare.service")
if [ -z "$s" ] || ! above "$s" "$max"; then
	echo "FAIL: the unit without its sandbox scores '$s', not more than $max"
	rc=1
fi
exit $rc
