# An upgrade over a running xpud keeps the allocations (xpud saves them in /var/lib/xpud and
# reloads them when it is restarted) and an administrator's /etc/xpud/xpud.yaml: the installed
# xpud package, repacked with a higher version (dpkg-deb -R, then -b), installed over it with apt.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
id=$(hold_allocation)
[ -n "$id" ] || fail "no allocation"
echo "holding $id (owner PID $(cat /run/xpu-test-owner))"
printf '# edited by the administrator\nhealth-interval: 10s\n' >>/etc/xpud/xpud.yaml
systemctl reload xpud.service
sum=$(md5sum </etc/xpud/xpud.yaml)
old=$(dpkg-query -W -f='${Version}' xpud)
new="$old+upgrade1"
pid=$(main_pid)

rm -rf /var/tmp/repack && mkdir -p /var/tmp/repack
deb=$(ls "$XPU_TEST_DIR"/debs/xpud_*.deb)
dpkg-deb -R "$deb" /var/tmp/repack/tree
sed -i "s/^Version: .*/Version: $new/" /var/tmp/repack/tree/DEBIAN/control
dpkg-deb -b /var/tmp/repack/tree "/var/tmp/repack/xpud_${new}_amd64.deb" >/dev/null
chmod -R a+rX /var/tmp/repack
apt-get install -y "/var/tmp/repack/xpud_${new}_amd64.deb" >/tmp/upgrade.log 2>&1 ||
	{ tail -n 20 /tmp/upgrade.log; fail "the upgrade failed"; }
grep -iE "xpud|warn|conffile" /tmp/upgrade.log | grep -v "^Get:" | head -n 8
[ "$(dpkg-query -W -f='${Version}' xpud)" = "$new" ] || fail "xpud is not at $new"
echo "xpud $old -> $(dpkg-query -W -f='${Version}' xpud); PID $pid -> $(main_pid)"
wait_for 30 is_running || fail "xpud is $(state) after the upgrade"
[ "$(main_pid)" != "$pid" ] || fail "xpud was not restarted by the upgrade"
xpuctl allocations | tee /tmp/allocs
grep -q "$id" /tmp/allocs || fail "allocation $id was lost in the upgrade"
[ "$(md5sum </etc/xpud/xpud.yaml)" = "$sum" ] || fail "the upgrade changed xpud.yaml"
grep -q "edited by the administrator" /etc/xpud/xpud.yaml || fail "the edit is gone"
echo "xpud.yaml kept: $(tail -n 2 /etc/xpud/xpud.yaml | tr '\n' ' ')"
