# DKMS asked to build xpu_pci for a kernel whose headers are not installed (a version of the
# running kernel's series that this guest does not have) says so and fails that build only: the
# package stays installed and the running kernel's module stays in place. What this proves: the
# message and the package's state for a missing kernel's headers; not a build against headers
# of another version (DKMS builds only against /lib/modules/VERSION/build).
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
fake=0.0.0-0-xpu-test
ver=$(dkms status -m xpu-pci 2>/dev/null | awk -F '[/,]' '/^xpu-pci\// && !v { v = $2 } END { print v }')
[ -n "$ver" ] || fail "no xpu-pci in dkms status"
if dkms build -m xpu-pci -v "$ver" -k "$fake" >/tmp/dkms.out 2>&1; then
	cat /tmp/dkms.out
	fail "dkms built for a kernel without headers"
fi
cat /tmp/dkms.out
grep -qiE "headers.*$fake|$fake.*headers" /tmp/dkms.out || fail "the message does not name the headers"
dpkg-query -W -f='${Status}\n' xpu-pci-dkms | tee /tmp/st
grep -q "install ok installed" /tmp/st || fail "xpu-pci-dkms is not installed any more"
dkms status -m xpu-pci >/tmp/dkms-status 2>&1
cat /tmp/dkms-status
grep -q "$(uname -r), x86_64: installed" /tmp/dkms-status ||
	fail "the running kernel's module is gone"
