# The watchdog restarts a hung xpud: SIGSTOP freezes its event loop (no WATCHDOG=1 any more), and
# systemd kills and restarts it. For the test only, a drop-in shortens WatchdogSec= from the
# shipped 30s to 3s; it is removed afterwards.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
mkdir -p /run/systemd/system/xpud.service.d
printf '[Service]\nWatchdogSec=3s\n' >/run/systemd/system/xpud.service.d/watchdog.conf
systemctl daemon-reload
systemctl restart xpud.service
wait_for 30 is_running || fail "xpud is $(state) after the restart"
sleep 7 # more than twice the watchdog: a running xpud pets it
pid=$(main_pid)
{ is_running && [ "$pid" -gt 0 ]; } || fail "a running xpud was not left alone: $(state)"
since=$(now)
kill -STOP "$pid"
echo "stopped xpud (PID $pid) with SIGSTOP at $since"
restarted() { [ "$(main_pid)" != "$pid" ] && [ "$(main_pid)" != 0 ] && is_running; }
wait_for 30 restarted || fail "no restart: $(state), PID $(main_pid)"
echo "restarted as PID $(main_pid), $(systemctl show -p NRestarts --value xpud.service) restart(s)"
journalctl -q -o cat -u xpud.service --since "$since" | grep -iE "watchdog|restart" | head -n 5
journalctl -q -o cat -u xpud.service --since "$since" | grep -q "Watchdog timeout" ||
	fail "the restart was not the watchdog's"
rm -r /run/systemd/system/xpud.service.d
systemctl daemon-reload
systemctl restart xpud.service
wait_for 30 is_running || fail "xpud is $(state) without the drop-in"
