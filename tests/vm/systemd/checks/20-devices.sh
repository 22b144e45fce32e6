# The edu device through xpu_pci, built by DKMS in this guest for the running kernel, listed by
# xpud on NUMA node 1 with CPU 1 (as sysfs has it); an xpud started before the module takes the
# device when the module is loaded, without a restart; a member of "xpu" may query xpud, a user
# outside it is refused (docs/api.md, "Permissions").
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
dkms status >/tmp/dkms-status 2>&1
cat /tmp/dkms-status
grep -q "xpu-pci/.*, $(uname -r), x86_64: installed" /tmp/dkms-status ||
	fail "xpu-pci is not installed by DKMS for $(uname -r)"
modinfo -F filename xpu_pci
modinfo -F filename xpu_pci | grep -q "/updates/dkms/" || fail "xpu_pci is not DKMS's build"
addr=$(edu_addr) || fail "no edu device"
# The device was there before the module: xpu-pci-dkms's postinst loads xpu_pci for it (as udev
# would have at the device's "add" event), so it is listed without a reboot.
wait_for 10 grep -q '^xpu_pci ' /proc/modules ||
	fail "after the install xpu_pci is not loaded, though $addr is present"
echo "edu at $addr, driver $(basename "$(readlink "/sys/bus/pci/devices/$addr/driver")")"
wait_for 30 lists_edu healthy || { xpuctl devices; fail "xpud does not list $addr healthy"; }
# run.sh puts the device behind a PCIe expander bridge on NUMA node 1, the node of CPU 1
numa=$(cat "/sys/bus/pci/devices/$addr/numa_node")
echo "edu's NUMA node (sysfs): $numa, CPUs $(cat "/sys/bus/pci/devices/$addr/local_cpulist")"
[ "$numa" = 1 ] || fail "$addr is on NUMA node $numa in sysfs, not 1"
j=$(json devices)
if ! echo "$j" | grep -q '"numa_node":1[,}]' || ! echo "$j" | grep -q '"cpu_list":"1"'; then
	xpuctl device "$addr"
	fail "xpud does not report $addr on NUMA node 1 with CPU 1"
fi

# xpud running before the module (a node booted without it, a modprobe later): it waits for the
# module's generic netlink family and lists the device once it is loaded, in the same process
systemctl stop xpud.service
modprobe -r xpu_pci || fail "cannot unload xpu_pci"
systemctl start xpud.service || fail "xpud does not start without xpu_pci"
pid=$(main_pid)
waits() {
	xpuctl -o json version | tr -d ' \n\t' |
		grep -q '"name":"kmod","available":true,"reason":"thexpu_pcikernelmoduleisnotloaded'
}
wait_for 10 waits ||
	{ xpuctl -o json version; fail "without the module, xpud does not say it waits for it"; }
modprobe xpu_pci || fail "cannot load xpu_pci"
wait_for 30 lists_edu healthy || { xpuctl devices; fail "xpud does not take $addr from the module loaded after it"; }
[ "$(main_pid)" = "$pid" ] || fail "xpud was restarted"
journal_since "$(date -d '-2 min' '+%Y-%m-%d %H:%M:%S')" | grep "xpu_pci" | tail -n 3

id alice >/dev/null 2>&1 || useradd --create-home --groups xpu alice
id bob >/dev/null 2>&1 || useradd --create-home bob
echo "alice: $(id alice)"
runuser -u alice -- xpuctl devices | tee /tmp/alice.out || fail "alice (in xpu) was refused"
grep -q "$addr" /tmp/alice.out || fail "alice does not see $addr"
if runuser -u bob -- xpuctl devices >/tmp/bob.out 2>&1; then
	fail "bob (not in xpu) was answered: $(cat /tmp/bob.out)"
fi
echo "bob: $(cat /tmp/bob.out)"
grep -q "Permission denied" /tmp/bob.out || fail "bob's refusal does not say why"
