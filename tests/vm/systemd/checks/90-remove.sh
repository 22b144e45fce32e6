# Removal: "apt-get remove" with an allocation held warns (and removes); "dpkg -r" and
# "dpkg -P" leave nothing of the packages behind: no file of theirs, no state directory after
# the purge, no units, no module. Last of the checks: the packages are gone after it.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
wait_for 30 is_running || fail "xpud is $(state)"
xpuctl --no-legend allocations | grep -q . || hold_allocation >/dev/null
xpuctl allocations
pkgs=$(dpkg-query -W -f='${Package} ${Status}\n' 'xpud' 'libxpu*' 'xpu-pci-dkms' 2>/dev/null |
	awk '/install ok installed/ { print $1 }' | tr '\n' ' ')
echo "installed: $pkgs"
for p in $pkgs; do dpkg-query -L "$p"; done | sort -u >/tmp/files
dpkg-query -W -f='${Conffiles}\n' xpud | awk 'NF { print $1 }' >/tmp/conffiles
ko=$(modinfo -F filename xpu_pci)

apt-get remove -y xpud >/tmp/remove.out 2>&1 || { cat /tmp/remove.out; fail "apt-get remove failed"; }
grep -iE "warning|alloc" /tmp/remove.out
grep -q "allocation(s) are held" /tmp/remove.out || fail "no warning of the held allocation"
# shellcheck disable=SC2086 # one word per package
dpkg -r $pkgs >/tmp/dpkg-r.out 2>&1 || { cat /tmp/dpkg-r.out; fail "dpkg -r failed"; }
left=$(while read -r f; do
	# files and links, not directories (nor /lib, a link to one)
	{ [ -f "$f" ] || [ -L "$f" ]; } && [ ! -d "$f" ] && ! grep -qx "$f" /tmp/conffiles && echo "$f"
done </tmp/files)
[ -z "$left" ] || fail "files left after dpkg -r: $left"
echo "after dpkg -r: only the conffiles ($(tr '\n' ' ' </tmp/conffiles))"
[ ! -e "$ko" ] || fail "the module $ko is left"
dkms status -m xpu-pci | grep . && fail "dkms still knows xpu-pci"
for u in xpud.service xpud.socket; do
	systemctl cat "$u" >/dev/null 2>&1 && fail "$u is still known to systemd"
done

# shellcheck disable=SC2086
dpkg -P $pkgs >/tmp/dpkg-p.out 2>&1 || { cat /tmp/dpkg-p.out; fail "dpkg -P failed"; }
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $st in "" | *not-installed) ;; *) fail "$p is still in dpkg's database: $st" ;; esac
done
left=$(while read -r f; do { [ -f "$f" ] || [ -L "$f" ]; } && [ ! -d "$f" ] && echo "$f"; done </tmp/files)
[ -z "$left" ] || fail "files left after dpkg -P: $left"
for d in /etc/xpud /var/lib/xpud /run/xpud /usr/src/xpu-pci-* /var/lib/dkms/xpu-pci; do
	[ ! -e "$d" ] || fail "$d is left after the purge: $(ls -la "$d")"
done
ls /etc/systemd/system/*/xpud* /etc/systemd/system/xpud* 2>/dev/null && fail "unit links left"
find /lib/modules -name 'xpu_pci.ko*' | grep . && fail "a module file is left"
grep -q '^xpu_pci ' /proc/modules && echo "note: xpu_pci stays loaded until reboot or rmmod"
echo "after dpkg -P: nothing of $pkgs left"
