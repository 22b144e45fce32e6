# Helpers of the guest's checks (checks/*.sh source it as "$XPU_TEST_LIB"). A check is a shell
# script that exits 0 when what it checks holds; what it prints is shown under its verdict.

fail() { echo "$*"; exit 1; }

wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS
	end=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

edu_addr() { # the PCI address of QEMU's edu device
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ] &&
			{ basename "$d"; return 0; }
	done
	return 1
}

main_pid() { systemctl show -p MainPID --value xpud.service; }
state() { systemctl show -p ActiveState,SubState --value xpud.service | tr '\n' ' '; }
is_running() { [ "$(state)" = "active running " ]; }
# the journal of xpud since the check started (checks start with: since=$(now))
now() { date '+%Y-%m-%d %H:%M:%S'; }
journal_since() { journalctl -q -o cat -u xpud.service --since "$1"; }

# xpuctl's JSON, on one line with no blanks, for grep
json() { xpuctl -o json "$@" | tr -d ' \n\t'; }
lists_edu() { # lists_edu HEALTH: xpud lists the edu device through xpu_pci with that health
	j=$(json devices) || return 1
	echo "$j" | grep -q "\"id\":\"$(edu_addr)\"" && echo "$j" | grep -q '"backend":"kmod"' &&
		echo "$j" | grep -q "\"state\":\"$1\""
}

# hold_allocation: one slice of the edu device allocated to a process that lives on after the
# check (owner PID in /run/xpu-test-owner); prints the allocation's ID
hold_allocation() {
	setsid sleep 100000 </dev/null >/dev/null 2>&1 &
	echo $! >/run/xpu-test-owner
	xpuctl alloc xpu.dev/edu --owner-pid "$(cat /run/xpu-test-owner)" | awk '/^Allocation:/ { print $2 }'
}

# set_config TEXT: /etc/xpud/xpud.yaml becomes TEXT, and xpud is told to reload it
set_config() {
	printf '%s\n' "$1" >/etc/xpud/xpud.yaml
	systemctl reload xpud.service
}
