# systemctl reload xpud re-reads /etc/xpud/xpud.yaml: a partition rule that offers every device
# as two replicas shows as two slices of the edu device, without a restart.
# shellcheck source=tests/vm/systemd/lib.sh
. "$XPU_TEST_LIB"
addr=$(edu_addr)
pid=$(main_pid)
cp /etc/xpud/xpud.yaml /tmp/xpud.yaml.orig
slices() { xpuctl --no-legend slices | grep -c "$addr"; }
before=$(slices)
echo "slices of $addr before: $before"
[ "$before" = 1 ] || fail "expected one slice (the device whole)"
set_config "partitions:
  - match: all
    replicas: 2"
wait_for 10 sh -c "[ \$(xpuctl --no-legend slices | grep -c $addr) = 2 ]" ||
	{ xpuctl slices; fail "the reload did not make two replicas"; }
xpuctl slices
[ "$(main_pid)" = "$pid" ] || fail "xpud was restarted, not reloaded"
cp /tmp/xpud.yaml.orig /etc/xpud/xpud.yaml
systemctl reload xpud.service
wait_for 10 sh -c "[ \$(xpuctl --no-legend slices | grep -c $addr) = 1 ]" ||
	fail "back to the shipped file: not one slice"
