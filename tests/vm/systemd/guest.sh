#!/bin/sh
# The test inside the guest, run by xpu-guest.service from the second disk (mounted read-only at
# /run/xpu-test; see run.sh): installs the packages of debs/ with apt, waits for xpud, runs each
# checks/*.sh in name order as root and prints "PASS NAME" or "FAIL NAME" (the check's output
# indented below), "@@PHASE NAME SECONDS" for the host's timing table and "@@RESULT pass=N
# fail=M" at the end. The unit powers the guest off when this script exits.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
T=/run/xpu-test
export XPU_TEST_DIR=$T XPU_TEST_LIB=$T/lib.sh

up() { cut -d' ' -f1 /proc/uptime | cut -d. -f1; }
phase_start=$(up)
phase() { # phase NAME: the seconds since the previous phase ended
	now=$(up)
	echo "@@PHASE $1 $((now - phase_start))"
	phase_start=$now
}
indent() { sed 's/^/    /'; }

echo "@@PHASE boot $(up)"
echo "== kernel $(uname -r), $(systemctl --version | head -n 1)"

# apt reads the packages as its sandbox user: a copy it may read, outside the read-only disk
mkdir -p /var/tmp/xpu-debs
cp "$T"/debs/*.deb /var/tmp/xpu-debs/
chmod -R a+rX /var/tmp/xpu-debs
cd /var/tmp/xpu-debs || exit 1
echo "== apt-get install" ./*.deb
if ! apt-get install -y ./*.deb >/var/tmp/xpu-install.log 2>&1; then
	tail -n 60 /var/tmp/xpu-install.log | indent
	echo "FAIL install"
	echo "@@RESULT pass=0 fail=1"
	exit 1
fi
grep -iE "dkms|xpu|warn|error" /var/tmp/xpu-install.log | grep -v "^Get:\|^Selecting\|^Preparing\|^Unpacking" |
	tail -n 30 | indent
phase install
cd / || exit 1

n=0
while ! systemctl is-active -q xpud.service && [ $n -lt 60 ]; do
	sleep 1
	n=$((n + 1))
done
systemctl status --no-pager xpud.service xpud.socket 2>&1 | head -n 20 | indent

pass=0
fail=0
for c in "$T"/checks/*.sh; do
	name=$(basename "$c" .sh)
	start=$(up)
	if out=$(timeout 300 sh "$c" </dev/null 2>&1); then
		pass=$((pass + 1))
		echo "PASS $name ($(($(up) - start))s)"
	else
		fail=$((fail + 1))
		echo "FAIL $name ($(($(up) - start))s)"
	fi
	[ -n "$out" ] && echo "$out" | tail -n 60 | indent
done
phase checks
echo "@@RESULT pass=$pass fail=$fail"
