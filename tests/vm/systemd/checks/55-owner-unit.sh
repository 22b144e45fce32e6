#!/bin/sh
# An existing unit as the owner of an enforced grant, under the real systemd: a running service
# with its own MemoryMax= is confined by `xpuctl alloc --owner-unit --enforce` (systemctl show:
# DevicePolicy=closed, DeviceAllow= only the granted node, the grant's MemoryMax=), the service
# itself then opens the granted node and gets EPERM on a node of an unused major (ENXIO outside
# any confinement); the release gives the service its own settings back and ENXIO again; a grant
# held when the service stops is released. PASS/FAIL by exit status.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
set -u
RES=xpu.dev/edu
UNIT=xpu-check-owner.service
DIR=/run/xpu-check-owner
DENIED=/dev/xpu-check-owner-denied
trap 'systemctl stop "$UNIT" 2>/dev/null; rm -rf "$DIR" "$DENIED"' EXIT
mkdir -p "$DIR"

# the node a grant of RES gets: from a grant made and given back at once
out=$(xpuctl alloc "$RES") || fail "cannot allocate $RES: $out"
GRANTED=$(echo "$out" | sed -n 's/^Device nodes: *//p' | head -n 1)
xpuctl release "$(echo "$out" | sed -n 's/^Allocation: *//p')" >/dev/null || fail "release"

major=260
while grep -q "^ *$major " /proc/devices; do major=$((major + 1)); done
mknod "$DENIED" c "$major" 0 || fail "cannot make $DENIED"

# The service answers each probe request ($DIR/probe) with what it can open ($DIR/result).
# shellcheck disable=SC2016 # expanded by the service's shell
systemd-run --quiet --unit="$UNIT" -p MemoryMax=1G -- sh -c '
while :; do
	if [ -e '"$DIR"'/probe ]; then
		rm -f '"$DIR"'/probe
		{
			dd if='"$GRANTED"' of=/dev/null count=0 2>/dev/null && echo granted=opened
			echo "denied=$(dd if='"$DENIED"' of=/dev/null count=0 2>&1 | head -n 1)"
		} >'"$DIR"'/result.new
		mv '"$DIR"'/result.new '"$DIR"'/result
	fi
	sleep 0.1
done' || fail "cannot start $UNIT"
wait_for 5 systemctl is-active --quiet "$UNIT" || fail "$UNIT is not active"

probe() {
	rm -f "$DIR/result"
	touch "$DIR/probe"
	wait_for 5 test -e "$DIR/result" || fail "$UNIT did not answer the probe"
	sed 's/^/  | /' "$DIR/result"
}
show() { systemctl show "$UNIT" -p DevicePolicy -p DeviceAllow -p MemoryMax; }

echo "before:"
show | sed 's/^/  | /'
probe
grep -q "^denied=.*No such device or address" "$DIR/result" ||
	fail "before any grant, $DENIED does not give ENXIO in $UNIT"

out=$(xpuctl alloc "$RES" --owner-unit "$UNIT" --enforce --memory-max 256M) ||
	fail "xpuctl alloc --owner-unit --enforce: $out"
echo "$out" | sed 's/^/  | /'
id=$(echo "$out" | sed -n 's/^Allocation: *//p')
echo "$out" | grep -q "^Confined in: *$UNIT" || fail "the grant does not say it confines $UNIT"
echo "confined:"
show | tee "$DIR/show" | sed 's/^/  | /'
grep -qx "DevicePolicy=closed" "$DIR/show" || fail "DevicePolicy is not closed"
grep -qx "DeviceAllow=$GRANTED rw" "$DIR/show" || fail "DeviceAllow is not exactly $GRANTED rw"
grep -qx "MemoryMax=268435456" "$DIR/show" || fail "MemoryMax is not the grant's"
probe
grep -q "^granted=opened" "$DIR/result" || fail "$GRANTED does not open in $UNIT"
grep -q "^denied=.*Operation not permitted" "$DIR/result" ||
	fail "$DENIED was not refused with EPERM in $UNIT"

xpuctl release "$id" >/dev/null || fail "cannot release $id"
echo "released:"
show | tee "$DIR/show" | sed 's/^/  | /'
grep -qx "DevicePolicy=auto" "$DIR/show" || fail "DevicePolicy is not the unit's own again"
grep -qx "MemoryMax=1073741824" "$DIR/show" || fail "MemoryMax is not the unit's own again"
grep -q "^DeviceAllow=." "$DIR/show" && fail "DeviceAllow still has entries"
probe
grep -q "^denied=.*No such device or address" "$DIR/result" ||
	fail "after the release, $DENIED is still refused in $UNIT"

# a grant held when the unit stops goes with it
out=$(xpuctl alloc "$RES" --owner-unit "$UNIT" --enforce) || fail "second grant: $out"
id=$(echo "$out" | sed -n 's/^Allocation: *//p')
systemctl stop "$UNIT"
no_alloc() { ! xpuctl allocations | grep -q "$id"; }
wait_for 10 no_alloc || fail "allocation $id is still there after $UNIT stopped"
echo PASS
