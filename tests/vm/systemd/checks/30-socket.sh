# Socket activation: with xpud stopped and xpud.socket still listening, a client's connection
# starts xpud again, and the client gets its answer.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
systemctl stop xpud.service
[ "$(systemctl is-active xpud.service)" = inactive ] || fail "xpud did not stop: $(state)"
[ "$(systemctl is-active xpud.socket)" = active ] || fail "the socket stopped with xpud"
echo "stopped; socket $(systemctl is-active xpud.socket)"
xpuctl devices | tee /tmp/socket.out || fail "xpuctl got no answer from the socket"
grep -q "$(edu_addr)" /tmp/socket.out || fail "the answer lacks the edu device"
is_running || fail "xpud is $(state) after the connection"
journalctl -q -o cat -u xpud.socket -u xpud.service -n 5 --no-pager
