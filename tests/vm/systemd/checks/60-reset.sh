# reset-when-idle inside the hardened unit: a fault that only a reset clears (the xpu_pci
# module's fake_fault knob) makes the idle edu device unhealthy; xpud resets it through the
# module's XPU_PCI_IOC_RESET on /dev/xpu/0 (DeviceAllow=char-xpu rw), it goes through probation
# and is healthy again. Then the unit's one sysfs allowance: in xpud's own mount namespace a
# PCI function's "reset" file is writable (ReadWritePaths=/sys/devices, what the generic PCI
# and NVIDIA backends write), while /sys/bus/pci/rescan and the kernel's tunables stay read-only.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
addr=$(edu_addr)
fault=/sys/kernel/debug/xpu_pci/xpu0/fake_fault
[ -e $fault ] || fail "no $fault (debugfs: $(grep debugfs /proc/mounts))"
cp /etc/xpud/xpud.yaml /tmp/xpud.yaml.orig
set_config 'health-interval: 200ms
health-probation: 1s
reset-when-idle: accel'
since=$(now)
sleep 1
echo 1 >$fault
was_reset() { journal_since "$since" | grep -q "Device $addr was reset"; }
wait_for 30 was_reset || {
	journal_since "$since" | tail -n 15
	fail "xpud did not reset $addr"
}
journal_since "$since" | grep -E "Device $addr" | grep -E "reset|probation|unhealthy" | head -n 6
[ "$(cat $fault)" = N ] || fail "the reset did not clear fake_fault"
wait_for 10 lists_edu healthy || fail "not healthy after the reset"
! journal_since "$since" | grep -iE "reset.*(denied|not permitted|read-only)" ||
	fail "the sandbox refused part of the reset"
cp /tmp/xpud.yaml.orig /etc/xpud/xpud.yaml
systemctl reload xpud.service

pid=$(main_pid)
in_xpud() { nsenter -t "$pid" -m -- sh -c "$1"; }
reset_file=/sys/bus/pci/devices/$addr/reset
[ -e "$reset_file" ] || fail "$addr has no reset file"
in_xpud "echo 1 >$reset_file" || fail "$reset_file is not writable in xpud's namespace"
echo "in xpud's mount namespace: wrote 1 to $reset_file"
for ro in /sys/bus/pci/rescan /sys/kernel/mm/ksm/run /proc/sys/vm/drop_caches; do
	if out=$(in_xpud "echo 1 >$ro" 2>&1); then
		fail "$ro is writable in xpud's namespace"
	fi
	echo "$ro: $out"
	echo "$out" | grep -q "Read-only file system" || fail "$ro: not refused as read-only"
done
wait_for 10 lists_edu healthy || fail "not healthy after the sysfs reset"
