#!/bin/sh
# xpuctl run under the real systemd (PID 1 of the guest), as root, with xpud installed and active:
# the command runs in a transient scope xpu-<allocation>.scope under xpu.slice whose properties
# are the grant's (systemctl show), the granted node opens in it and a node of an unused major
# is refused with EPERM (outside: ENXIO), memory.max, cpu.max and --numa-local's cpuset are in
# force in its cgroup, xpuctl exits with the command's status, and the allocation and the unit are
# gone afterwards. --numa-local: run.sh puts the edu device on NUMA node 1 (of two, one CPU each),
# so the scope has AllowedCPUs=1 and AllowedMemoryNodes=1, its cgroup cpuset.cpus 1 (and
# cpuset.mems 1), and the command runs on CPU 1 only. Then the speed: xpuctl run -- true against
# systemd-run --scope true, 20 each, printed with their ratio (target: within 2x; no timed
# assertion), and that the scopes left no drop-in behind. PASS/FAIL by exit status.
set -u
RES=xpu.dev/edu
TMP=$(mktemp -d)
DENIED=/dev/xpu-check-denied
trap 'rm -rf "$TMP"; rm -f "$DENIED"' EXIT

fail() {
	echo "FAIL: $*"
	[ -s "$TMP/out" ] && sed 's/^/  | /' "$TMP/out"
	exit 1
}

# retries "$@" for up to 5 s
wait_for() {
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ $i -lt 50 ] || return 1
		sleep 0.1
	done
}

xpuctl -o json version | grep -q '"mode": *"systemd"' ||
	fail "xpud does not say it enforces through systemd: $(xpuctl -o json version)"

# the node a grant of RES gets: from a grant made and given back at once
xpuctl alloc "$RES" >"$TMP/alloc" || fail "cannot allocate $RES: $(cat "$TMP/alloc")"
id=$(sed -n 's/^Allocation: *//p' "$TMP/alloc")
GRANTED=$(sed -n 's/^Device nodes: *//p' "$TMP/alloc" | head -n 1)
node=$(sed -n 's/^NUMA node: *//p' "$TMP/alloc")
cpus=$(sed -n 's/^CPUs: *//p' "$TMP/alloc")
xpuctl release "$id" >/dev/null || fail "cannot release $id"
[ -c "$GRANTED" ] || fail "the grant's node '$GRANTED' is not a character device"
[ "$node" = 1 ] || fail "the grant is on NUMA node '$node', not 1"
[ "$cpus" = 1 ] || fail "the grant's CPUs are '$cpus', not 1"

# a character device of a major no driver has: ENXIO when let through, EPERM when refused
major=260
while grep -q "^ *$major " /proc/devices; do major=$((major + 1)); done
mknod "$DENIED" c "$major" 0 || fail "cannot make $DENIED"
dd if="$DENIED" of=/dev/null count=0 2>&1 | grep -q "No such device or address" ||
	fail "outside a scope, $DENIED does not give ENXIO"

# The command reports what it sees from inside its scope and exits 7.
export GRANTED DENIED
# shellcheck disable=SC2016 # expanded by the command's shell, inside the scope
inside='cg=$(sed -n "s/^0:://p" /proc/self/cgroup)
echo "alloc=$XPU_ALLOCATION"
echo "unit=${cg##*/}"
systemctl show "${cg##*/}" -p Slice -p DevicePolicy -p DeviceAllow -p MemoryMax \
	-p CPUQuotaPerSecUSec -p AllowedCPUs -p AllowedMemoryNodes
for f in memory.max cpu.max cpuset.cpus cpuset.cpus.effective cpuset.mems \
	cpuset.mems.effective; do
	[ -r "/sys/fs/cgroup$cg/$f" ] && echo "$f=$(cat "/sys/fs/cgroup$cg/$f")"
done
sed -n "s/^\(Cpus_allowed_list\|Mems_allowed_list\):[[:space:]]*/\1=/p" /proc/$$/status
echo "taskset=$(taskset -pc $$)"
dd if="$GRANTED" of=/dev/null count=0 2>/dev/null && echo "granted=opened"
echo "denied=$(dd if="$DENIED" of=/dev/null count=0 2>&1 | head -n 1)"
exit 7'
xpuctl run --resource "$RES=1" --numa-local --memory-max 256M --cpu-quota 50 -- sh -c "$inside" \
	>"$TMP/out" 2>&1
rc=$?
sed 's/^/  | /' "$TMP/out"
[ $rc = 7 ] || fail "xpuctl run exited $rc, not the command's 7"
unit=$(sed -n 's/^unit=//p' "$TMP/out")
alloc=$(sed -n 's/^alloc=//p' "$TMP/out")
case "$unit" in
xpu-a-*.scope) ;;
*) fail "the command ran in '$unit', not a scope of xpud's" ;;
esac
[ "$unit" = "xpu-$alloc.scope" ] || fail "unit $unit is not allocation $alloc's"
has() { grep -qx -- "$1" "$TMP/out" || fail "expected '$1'"; }
has "Slice=xpu.slice"
has "DevicePolicy=closed"
grep -q "^DeviceAllow=.*$GRANTED rw" "$TMP/out" || fail "DeviceAllow does not have $GRANTED rw"
has "MemoryMax=268435456"
has "CPUQuotaPerSecUSec=500ms"
has "memory.max=268435456"
has "cpu.max=50000 100000"
has "AllowedCPUs=1"
has "AllowedMemoryNodes=1"
has "cpuset.cpus=1"
has "cpuset.cpus.effective=1"
grep -q "^cpuset.mems=" "$TMP/out" && has "cpuset.mems=1"
has "Cpus_allowed_list=1"
has "Mems_allowed_list=1"
grep -q "^taskset=.*current affinity list: 1$" "$TMP/out" || fail "taskset does not say CPU 1 only"
has "granted=opened"
grep -q "^denied=.*Operation not permitted" "$TMP/out" || fail "$DENIED was not refused with EPERM"

# afterwards: the allocation released, the unit gone
no_alloc() { ! xpuctl allocations | grep -q "$alloc"; }
wait_for no_alloc || fail "allocation $alloc is still there after the command ended"
no_unit() { ! systemctl is-active --quiet "$unit"; }
wait_for no_unit || fail "$unit is still active after the command ended"

# a command that cannot be run: 127, and nothing left
xpuctl run --resource "$RES" -- /nonexistent/command >/dev/null 2>&1
rc=$?
[ $rc = 127 ] || fail "a command not found: exit $rc, not 127"
# shellcheck disable=SC2016
wait_for sh -c '[ -z "$(xpuctl --no-legend allocations)" ]' ||
	fail "allocations left: $(xpuctl allocations)"

# the speed, side by side
ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms)
for _ in $(seq 20); do xpuctl run --resource "$RES" -- true || fail "xpuctl run -- true"; done
t1=$(ms)
for _ in $(seq 20); do systemd-run --quiet --scope true || fail "systemd-run --scope true"; done
t2=$(ms)
x=$((t1 - t0))
s=$((t2 - t1))
echo "xpuctl run -- true x20: ${x} ms; systemd-run --scope true x20: ${s} ms;" \
	"ratio $(awk "BEGIN { printf \"%.2f\", $x / ($s ? $s : 1) }") (target: within 2x)"

# Each run's release revoked its scope's devices (SetUnitProperties on a transient unit: systemd
# keeps such drop-ins with the unit); nothing of the 20 scopes is left in systemd's directories.
left=$(ls -d /run/systemd/transient/xpu-a-* /run/systemd/system.control/xpu-a-* 2>/dev/null)
[ -z "$left" ] || fail "left by the scopes: $left"
echo PASS
