# xpud reaches active (running) as a Type=notify service: systemd got its READY=1 (only then is a
# notify service "running" and "active"), and its STATUS= text, with the unit's hardening on.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
wait_for 30 is_running || fail "xpud is $(state)"
systemctl show -p Type,NotifyAccess,ActiveState,SubState,StatusText,WatchdogUSec xpud.service
[ "$(systemctl show -p Type --value xpud.service)" = notify ] || fail "not Type=notify"
# READY=1 came after the first inventory: the status line xpud sent with it names the socket
systemctl show -p StatusText --value xpud.service | grep -q "devices (.* healthy), serving on" ||
	fail "no status text from xpud"
systemctl is-enabled xpud.service xpud.socket
[ "$(systemctl is-active xpud.socket)" = active ] || fail "xpud.socket is not listening"
# what systemd itself says of the unit's exposure, live (the offline score is a ctest)
systemd-analyze security xpud.service | tail -n 1
