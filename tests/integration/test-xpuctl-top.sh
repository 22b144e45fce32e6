#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# xpuctl top in a real terminal: tmux runs it on xpud serving the mixed node. The devices show;
# an allocation made meanwhile shows without a key pressed; with the periodic redraw an hour
# apart (--interval 1h), a cordon shows within seconds: its event alone redraws; a wider window
# redraws the cut lines;
# q, SIGTERM and SIGINT end it with the terminal's settings as they were (stty -g before and after); off
# a terminal it prints one frame and exits 0; -o json is refused. Skips (77) without tmux.
set -eu
command -v tmux >/dev/null || { echo "tmux is not installed"; exit 77; }
: "${XPUD_BIN:?}" "${XPUCTL_BIN:?}" "${XPU_MKFIXTURE_BIN:?}"

dir=$(mktemp -d)
tm="tmux -S $dir/tmux.sock"
xpud_pid=""
cleanup() {
	$tm kill-server 2>/dev/null || true
	if [ -n "$xpud_pid" ]; then
		kill "$xpud_pid" 2>/dev/null || true
		wait "$xpud_pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	echo "--- the pane:"
	$tm capture-pane -p -t top 2>/dev/null || true
	exit 1
}

# Waits ($2 tenths of a second, 5 s by default, at most) until the pane shows the text $1.
wait_pane() {
	i=0
	while [ $i -lt "${2:-50}" ]; do
		$tm capture-pane -p -t top | grep -qF -- "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

"$XPU_MKFIXTURE_BIN" --node mixed "$dir/tree" >/dev/null
mkdir -p "$dir/tree/run"
sock="$dir/tree/run/xpud.sock"
"$XPUD_BIN" --root "$dir/tree" --socket "$sock" 2>"$dir/xpud.log" &
xpud_pid=$!
i=0
until "$XPUCTL_BIN" --socket "$sock" version >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 200 ] || { cat "$dir/xpud.log"; fail "xpud did not answer"; }
	sleep 0.1
done

# Off a terminal: one frame, exit 0.
rc=0
timeout 10 "$XPUCTL_BIN" --socket "$sock" top </dev/null >"$dir/frame" || rc=$?
[ $rc -eq 0 ] || fail "top into a file exited $rc"
if grep -q "$(printf '\033')" "$dir/frame"; then
	fail "escape sequences in the frame"
fi
grep -q "^0000:4d:00.0 *Habana Gaudi2 *healthy" "$dir/frame" || fail "no Gaudi2 in the frame"
[ "$(grep -c '^DEVICES$' "$dir/frame")" -eq 1 ] || fail "not one frame"

rc=0
"$XPUCTL_BIN" --socket "$sock" -o json top </dev/null >/dev/null 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "top -o json exited $rc, not 1"

rc=0
"$XPUCTL_BIN" --socket "$sock" top --interval 5ms </dev/null >/dev/null 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "top --interval 5ms exited $rc, not 1"

# In the terminal: the shell records the settings before and after, and how top ended.
# start_top WIDTH [TOP OPTIONS...]
start_top() {
	width=$1
	shift
	cat >"$dir/run.sh" <<END
stty -g >"$dir/stty.before"
sh -c 'echo \$\$ >"$dir/pid"; exec "$XPUCTL_BIN" --socket "$sock" top $*'
echo "top exited \$?"
stty -g >"$dir/stty.after"
sleep 60
END
	rm -f "$dir/pid" "$dir/stty.before" "$dir/stty.after"
	$tm new-session -d -s top -x "$width" -y 40 "sh $dir/run.sh"
	wait_pane "Habana Gaudi2" || fail "the devices do not show"
}

ended_cooked() {
	wait_pane "top exited 0" || fail "top did not end with status 0 ($1)"
	i=0
	while [ ! -s "$dir/stty.after" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	cmp -s "$dir/stty.before" "$dir/stty.after" ||
		fail "the terminal's settings were not restored after $1"
}

start_top 80
wait_pane "0000:8a:00.0  Intel Data Center GPU Flex 170" || fail "the devices do not show"
# the end of the header line is past column 80
if $tm capture-pane -p -t top | grep -qF "(q quits)"; then
	fail "the header shows whole at 80 columns"
fi

id=$("$XPUCTL_BIN" --socket "$sock" alloc habana.ai/gaudi | sed -n 's/^Allocation: *//p')
[ -n "$id" ] || fail "no allocation made"
wait_pane "$id  habana.ai/gaudi" || fail "the allocation $id does not show without a key"

$tm resize-window -t top -x 200 -y 40
wait_pane "(q quits)" || fail "no redraw at the new width"

# 40x10: the last line is cut at 40 columns; were it not, it would wrap and scroll the screen
$tm resize-window -t top -x 40 -y 10
sleep 2.2
$tm capture-pane -p -t top >"$dir/pane"
[ "$(sed -n 10p "$dir/pane")" = "0000:8a:00.0  Intel Data Center GPU Flex" ] ||
	fail "the tenth line is not the device cut at 40 columns"
grep -q "^xpud at " "$dir/pane" || fail "the screen scrolled: no header at 40x10"

$tm send-keys -t top q
ended_cooked "q"
$tm kill-session -t top

# Redrawn every hour only: the cordon's event on /v1/events is what redraws (3 s at most).
start_top 120 --interval 1h
coral="xpu.dev/google-coral-edge-tpu  1      1     0          1"
wait_pane "$coral" || fail "the Coral's slice is not free"
"$XPUCTL_BIN" --socket "$sock" cordon 0000:5e:00.0 --reason test >/dev/null ||
	fail "cannot cordon the Coral"
wait_pane "xpu.dev/google-coral-edge-tpu  1      0     0          0" 30 ||
	fail "the cordon does not show within 3 s without a periodic redraw"
"$XPUCTL_BIN" --socket "$sock" uncordon 0000:5e:00.0 >/dev/null || fail "cannot uncordon"
wait_pane "$coral" 30 || fail "the uncordon does not show within 3 s"
$tm send-keys -t top q
ended_cooked "q (--interval 1h)"
$tm kill-session -t top

for sig in TERM INT; do
	start_top 120
	kill -"$sig" "$(cat "$dir/pid")"
	ended_cooked "SIG$sig"
	$tm kill-session -t top
done
echo "ok"
