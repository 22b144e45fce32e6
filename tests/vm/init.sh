#!/bin/sh
# /init of the QEMU guest that tests the xpu_pci module (see tests/vm/run.sh). It prints one
# "CHECK PASS|FAIL <name>" line per check, asks the host for PCI hot-(un)plug with "@@HOST"
# lines, ends with "@@RESULT pass=N fail=M" and powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mkdir -p /tmp /run /var/lib/xpud
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
. /etc/xpu-vm.conf # LOAD_CYCLES, REPLUG_CYCLES, QMP_CYCLES, FUZZ_SECONDS, FUZZ_SEED

pass=0
fail=0
SOCK=/run/xpud.sock
DEV=/dev/xpu/0
MOD=/lib/modules/xpu_pci.ko

uptime_s() { cut -d' ' -f1 /proc/uptime; }

check() { # check NAME COMMAND...: runs COMMAND, its output indented under the verdict
	name=$1
	shift
	if out=$("$@" 2>&1); then
		pass=$((pass + 1))
		echo "CHECK PASS $name ($(uptime_s)s)"
	else
		fail=$((fail + 1))
		echo "CHECK FAIL $name ($(uptime_s)s)"
	fi
	[ -n "$out" ] && echo "$out" | head -n 40 | sed 's/^/    /'
	return 0
}

wait_for() { # wait_for TENTHS COMMAND...: until COMMAND succeeds, at most TENTHS/10 seconds
	n=$1
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -le 0 ] && return 1
		sleep 0.1
	done
}

pci_fn() { # pci_fn VENDOR DEVICE: the address of the first such PCI function
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] &&
			{ basename "$d"; return 0; }
	done
	return 1
}

edu_addr() { pci_fn 0x1234 0x11e8; }

objects() { tr '\n' ' ' </sys/kernel/debug/xpu_pci/objects; }
health() { cat /sys/class/xpu/xpu0/health 2>/dev/null; }
is_healthy() { [ "$(health)" = healthy ]; }
is_unhealthy() { [ "$(health)" = unhealthy ]; }
gone() { [ ! -e "/sys/bus/pci/devices/$ADDR" ]; }
present() { [ -c $DEV ]; }
xpud_json() { xpuctl --socket $SOCK -o json devices | tr -d ' \n\t'; }
xpud_lists() { # xpud_lists HEALTH: the device is listed by the kmod backend with that health
	j=$(xpud_json) || return 1
	echo "$j" | grep -q "\"id\":\"$ADDR\"" || return 1
	echo "$j" | grep -q '"backend":"kmod"' || return 1
	echo "$j" | grep -q "\"state\":\"$1\""
}
xpud_lacks() { j=$(xpud_json) && ! echo "$j" | grep -q "\"id\":\"$ADDR\""; }
host() { echo "@@HOST $*" >/dev/console; } # not captured by check()

t_load() {
	insmod $MOD liveness_ms=100 || return 1
	wait_for 50 present || { echo "no $DEV"; return 1; }
}

t_bound() {
	drv=$(readlink "/sys/bus/pci/devices/$ADDR/driver")
	echo "driver: ${drv##*/}, id register: $(cat /sys/class/xpu/xpu0/id_register)"
	[ "${drv##*/}" = xpu_pci ] && [ "$(cat /sys/class/xpu/xpu0/id_register)" = 0x010000ed ]
}

t_attrs() {
	for a in pci_address bar_sizes numa_node link open_count aer_counts; do
		echo "$a: $(cat /sys/class/xpu/xpu0/$a | tr '\n' ' ')"
	done
	[ "$(cat /sys/class/xpu/xpu0/pci_address)" = "$ADDR" ] &&
		cat /sys/class/xpu/xpu0/bar_sizes | grep -q '^1048576 '
}

t_devnode() { [ -c $DEV ] && ls -l $DEV && xpu-vmcheck info $DEV; }

t_factorial() {
	before=$(cat /sys/class/xpu/xpu0/interrupts)
	xpu-vmcheck factorial $DEV 5 120 && xpu-vmcheck factorial $DEV 12 479001600 &&
		xpu-vmcheck factorial $DEV 0 1 || return 1
	after=$(cat /sys/class/xpu/xpu0/interrupts)
	echo "completion interrupts: $before -> $after"
	[ $((after - before)) -ge 3 ]
}

t_liveness() {
	wait_for 50 is_healthy || { echo "health: $(health)"; return 1; }
	echo "health $(health), failures $(cat /sys/class/xpu/xpu0/liveness_failures)"
	[ "$(cat /sys/class/xpu/xpu0/liveness_failures)" = 0 ]
}

# The real xpud's DRM backend: on its real host it lists through libdrm; the virtio-gpu is a GPU
# with the nodes and the driver the guest's kernel made (drm_sysfs); the bochs VGA has no render
# node: display only, no DRM nodes of it in xpud.
xpud_device() { xpuctl --socket $SOCK -o json device "$1" | tr -d ' \n\t'; }
xpud_has_drm_gpu() {
	j=$(xpud_device "$gpu") || return 1
	for want in '"kind":"gpu"' "\"driver\":\"$driver\"" "\"/dev/$card\"" "\"/dev/$render\"" \
		"\"drm_card\":\"$card\"" "\"drm_render\":\"$render\""; do
		echo "$j" | grep -qF "$want" || { echo "no $want"; return 1; }
	done
}

t_xpud_drm() {
	gpu=$(pci_fn 0x1af4 0x1050) && vga=$(pci_fn 0x1234 0x1111) || return 1
	# shellcheck disable=SC2034 # the minors
	read -r _ driver card card_minor render render_minor <<EOF
$(drm_sysfs | grep "^$gpu ")
EOF
	echo "kernel: $gpu $driver $card $render"
	wait_for 50 xpud_has_drm_gpu || {
		xpud_has_drm_gpu
		xpuctl --socket $SOCK device "$gpu"
		return 1
	}
	xpuctl --socket $SOCK device "$gpu" | grep -iE "kind|driver|nodes|drm|backend"
	! xpud_device "$vga" | grep -q /dev/dri || { echo "the VGA has DRM nodes in xpud"; return 1; }
	# its health probes answer (healthy), rather than asking for a rescan each time
	line=$(log_lines)
	wait_for 50 probed_since_of "$line" "$gpu" || { echo "no health probe of $gpu"; return 1; }
	grep "Health probe of $gpu: " /tmp/xpud.log | tail -n 1
	! grep "Health probe of $gpu: " /tmp/xpud.log | grep -v ": healthy\.$" | tail -n 3 | grep .
}

# Started from the main shell, not inside check(): that runs its command in a subshell, and
# the PID would be lost there (xpud would outlive the kill below and keep netlink sockets open).
xpud_start() {
	# Health probes (netlink GETs) every 200 ms, while the same device's events arrive on the
	# multicast group. No probation: a device the module says recovered is back at once,
	# within the checks' waits.
	printf 'health-interval: 200ms\nhealth-probation: 0\n' >/tmp/xpud.yaml
	xpud --socket $SOCK --config /tmp/xpud.yaml --state-dir /var/lib/xpud --log-level debug \
		>/tmp/xpud.log 2>&1 &
	XPUD_PID=$!
}

# xpud started before the module is loaded: its kmod backend is available and says the module
# is not loaded; t_xpud_start then sees it take the device once the module is, without a restart.
t_xpud_waits() {
	wait_for 100 xpuctl --socket $SOCK version || { tail -n 5 /tmp/xpud.log; return 1; }
	v=$(xpuctl --socket $SOCK -o json version | tr -d '\n\t')
	echo "$v" | grep -o '{ *"name": *"kmod"[^}]*}'
	echo "$v" | tr -d ' ' | grep -q '"name":"kmod","available":true,"reason":"thexpu_pcikernelmoduleisnotloaded'
}

t_xpud_start() {
	wait_for 100 xpud_lists healthy || { xpuctl --socket $SOCK devices; return 1; }
	xpuctl --socket $SOCK devices
}

t_unplug() {
	host unplug
	wait_for 300 gone || { echo "device still present"; return 1; }
	wait_for 100 xpud_lacks || { echo "xpud still lists $ADDR"; return 1; }
	grep "xpu_pci.*removed" /tmp/xpud.log | tail -n 1
	grep -q "xpu_pci.*removed" /tmp/xpud.log
}

t_plug() {
	host plug
	wait_for 300 present || { echo "no $DEV after plug"; return 1; }
	ADDR=$(edu_addr)
	wait_for 100 xpud_lists healthy || { xpuctl --socket $SOCK devices; return 1; }
	xpuctl --socket $SOCK devices
}

log_lines() { wc -l </tmp/xpud.log; }
probes() { grep -c "Health probe of $ADDR: " /tmp/xpud.log; }
probed_since() { # probed_since LINE STATE: a probe after that log line found the device STATE
	tail -n +"$(($1 + 1))" /tmp/xpud.log | grep -q "Health probe of $ADDR: $2\.$"
}
probe_errors_since() { # probe_errors_since LINE: probes after that log line that failed
	tail -n +"$(($1 + 1))" /tmp/xpud.log | grep "Health probe of $ADDR: " |
		grep -v -E ": (un)?healthy\.$"
}
probed_since_of() { # probed_since_of LINE ID: a probe of ID after that log line
	tail -n +"$(($1 + 1))" /tmp/xpud.log | grep -q "Health probe of $2: "
}
more_probes_than() { [ "$(probes)" -gt "$1" ]; }

t_fake_fail() { # while xpud probes every 200 ms: its GETs and the module's events interleave
	start=$(log_lines)
	probes_before=$(probes)
	echo 1 >/sys/module/xpu_pci/parameters/fake_liveness_fail
	wait_for 50 is_unhealthy || { echo "health: $(health)"; return 1; }
	echo "sysfs: $(health): $(cat /sys/class/xpu/xpu0/health_reason)"
	line=$(log_lines)
	wait_for 50 xpud_lists unhealthy || { echo "xpud does not report it unhealthy"; return 1; }
	wait_for 50 probed_since "$line" unhealthy || {
		echo "no probe saw it unhealthy"
		return 1
	}
	echo 0 >/sys/module/xpu_pci/parameters/fake_liveness_fail
	wait_for 50 is_healthy || { echo "sysfs still $(health)"; return 1; }
	line=$(log_lines)
	wait_for 50 xpud_lists healthy || {
		echo "xpud does not report it healthy again; its log:"
		grep -v HTTP /tmp/xpud.log | tail -n 12
		xpuctl --socket $SOCK devices
		return 1
	}
	wait_for 50 probed_since "$line" healthy || { echo "no probe saw it healthy"; return 1; }
	xpud_lists healthy || { echo "a probe made it unhealthy again"; return 1; }
	echo "$(($(probes) - probes_before)) health probes meanwhile"
	# each probe must read its own answer: an error here is a reply or ack read out of turn
	! probe_errors_since "$start" | tail -n 5 | grep .
}

FAULT=/sys/kernel/debug/xpu_pci/xpu0/fake_fault
resets() { grep -c "Device $ADDR: resetting it" /tmp/xpud.log; }
was_reset_times() { [ "$(grep -c "Device $ADDR was reset" /tmp/xpud.log)" -ge "$1" ]; }
fault_set() { [ "$(cat $FAULT)" = Y ]; }

# A fault that a reset cures (the module's fake_fault), with reset-when-idle off: none is made.
t_reset_off() {
	echo 1 >$FAULT
	wait_for 50 xpud_lists unhealthy || { echo "xpud does not report it unhealthy"; return 1; }
	line=$(log_lines)
	wait_for 50 more_probes_than $(($(probes) + 10)) || { echo "xpud does not probe"; return 1; }
	echo "$(resets) resets, fake_fault $(cat $FAULT), sysfs $(health)"
	[ "$(resets)" = 0 ] && fault_set && is_unhealthy && xpud_lists unhealthy
}

# reset-when-idle on (a live setting): the idle, unhealthy device is reset through the module's
# XPU_PCI_IOC_RESET, once; the reset clears the fault, and the device passes probation.
xpud_reset_on() {
	printf 'health-interval: 200ms\nhealth-probation: 1s\nreset-when-idle: accel\n' \
		>/tmp/xpud.yaml
	kill -HUP "$XPUD_PID"
}

t_reset_idle() {
	wait_for 100 was_reset_times 1 || {
		echo "xpud did not reset it; its log:"
		grep -v HTTP /tmp/xpud.log | tail -n 12
		return 1
	}
	grep -E "Device $ADDR(:| was| is)" /tmp/xpud.log | grep -E "reset|probation" | tail -n 4
	wait_for 50 is_healthy || { echo "sysfs still $(health) after the reset"; return 1; }
	fault_set && { echo "the reset did not clear fake_fault"; return 1; }
	# the reset runs off xpud's loop: the module's own report that the device answers again
	# may reach xpud before the reset's completion does; either way it goes to probation
	sed -n "/Device $ADDR: resetting it/,\$p" /tmp/xpud.log |
		grep -qE "Device $ADDR is probation \(was unhealthy, on (reset|probe-ok)\)" ||
		{ echo "no probation after the reset"; return 1; }
	wait_for 50 xpud_lists healthy || { echo "xpud does not report it healthy"; return 1; }
	grep "Device $ADDR is healthy again" /tmp/xpud.log | tail -n 1
	wait_for 50 more_probes_than $(($(probes) + 5))
	echo "$(resets) reset(s)"
	[ "$(resets)" = 1 ] && xpud_lists healthy
}

# Allocated: the reset waits for the release, then happens.
t_reset_busy() {
	id=$(xpuctl --socket $SOCK alloc xpu.dev/edu | sed -n 's/^Allocation: *//p')
	[ -n "$id" ] || { echo "no allocation"; return 1; }
	echo "allocated $id"
	echo 1 >$FAULT
	wait_for 50 xpud_lists unhealthy || { echo "xpud does not report it unhealthy"; return 1; }
	wait_for 50 grep -q "Device $ADDR needs a reset.*released" /tmp/xpud.log || {
		echo "xpud does not say it waits for the release"
		return 1
	}
	wait_for 50 more_probes_than $(($(probes) + 10))
	[ "$(resets)" = 1 ] && fault_set || { echo "reset while allocated: $(resets)"; return 1; }
	xpuctl --socket $SOCK release "$id" || return 1
	wait_for 100 was_reset_times 2 || { echo "no reset after the release"; return 1; }
	wait_for 50 xpud_lists healthy || { echo "xpud does not report it healthy"; return 1; }
	echo "$(resets) resets; fake_fault $(cat $FAULT)"
	[ "$(resets)" = 2 ] && ! fault_set
}

# xpud's netlink sockets must not pin the module: no dump of it is left half read.
t_rmmod_xpud() {
	wait_for 50 more_probes_than $(($(probes) + 1)) || { echo "xpud does not probe"; return 1; }
	rmmod xpu_pci || { grep "^xpu_pci " /proc/modules; cat /proc/net/netlink; return 1; }
	insmod $MOD liveness_ms=100 || return 1
	wait_for 50 present || { echo "no $DEV after insmod"; return 1; }
}

# The reloaded module has a new generic netlink family id: xpud finds it (the controller's
# notification), joins its events group again and lists the device from it, without a restart.
t_reload_xpud() {
	wait_for 100 xpud_lists healthy || {
		echo "xpud does not list the device from the reloaded module; its log:"
		grep -v HTTP /tmp/xpud.log | tail -n 12
		xpuctl --socket $SOCK devices
		return 1
	}
	line=$(log_lines)
	wait_for 50 probed_since "$line" healthy || { echo "no probe answers after the reload"; return 1; }
	# the events group: a health change of the new module's device reaches xpud at once
	echo 1 >/sys/module/xpu_pci/parameters/fake_liveness_fail
	wait_for 50 xpud_lists unhealthy || { echo "no health event after the reload"; return 1; }
	echo 0 >/sys/module/xpu_pci/parameters/fake_liveness_fail
	wait_for 50 xpud_lists healthy || { echo "not healthy again"; return 1; }
	grep "xpu_pci: the module is back" /tmp/xpud.log | tail -n 1
	kill -0 "$XPUD_PID"
}

t_rmmod_busy() {
	exec 3<$DEV
	if rmmod xpu_pci 2>/dev/null; then
		exec 3<&-
		echo "rmmod succeeded with a file open"
		return 1
	fi
	exec 3<&-
	echo "rmmod refused while $DEV is open"
}

t_load_cycles() {
	i=0
	while [ $i -lt "$LOAD_CYCLES" ]; do
		rmmod xpu_pci || return 1
		insmod $MOD liveness_ms=10 || return 1
		[ -c $DEV ] || wait_for 20 present || { echo "cycle $i: no $DEV"; return 1; }
		i=$((i + 1))
	done
	echo "$LOAD_CYCLES load/unload cycles; objects: $(objects)"
	objects | grep -q "devices 1 files 0 jobs 0"
}

t_replug_cycles() {
	i=0
	while [ $i -lt "$REPLUG_CYCLES" ]; do
		echo 1 >"/sys/bus/pci/devices/$ADDR/remove" || return 1
		objects | grep -q "devices 0 files 0 jobs 0" || { echo "cycle $i: $(objects)"; return 1; }
		echo 1 >/sys/bus/pci/rescan
		wait_for 20 present || { echo "cycle $i: no $DEV"; return 1; }
		i=$((i + 1))
	done
	echo "$REPLUG_CYCLES remove/rescan cycles; objects: $(objects)"
	objects | grep -q "devices 1 files 0 jobs 0"
}

t_qmp_cycles() {
	i=0
	while [ $i -lt "$QMP_CYCLES" ]; do
		host unplug
		wait_for 300 gone || { echo "cycle $i: not removed"; return 1; }
		objects | grep -q "devices 0 files 0 jobs 0" || { echo "cycle $i: $(objects)"; return 1; }
		host plug
		wait_for 300 present || { echo "cycle $i: not back"; return 1; }
		ADDR=$(edu_addr)
		i=$((i + 1))
	done
	echo "$QMP_CYCLES QMP unplug/plug cycles; objects: $(objects)"
	objects | grep -q "devices 1 files 0 jobs 0"
}

t_rmmod() {
	rmmod xpu_pci || return 1
	[ ! -e /sys/class/xpu ] && [ ! -e /sys/module/xpu_pci ] || { echo "leftovers in sysfs"; return 1; }
	! dmesg | grep -E "xpu_pci: leaked|BUG:|WARNING:|Oops|refcount_t:|general protection|UBSAN"
}

# The DRM drivers of /etc/xpu-vm-drm, in its order; no fbdev emulation: no console drawn on
# the emulated displays (in software, under TCG)
t_drm_load() {
	while read -r ko; do
		case $ko in
		drm_kms_helper.ko) insmod "/lib/modules/drm/$ko" fbdev_emulation=0 ;;
		*) insmod "/lib/modules/drm/$ko" ;;
		esac || { echo "insmod $ko failed"; return 1; }
	done </etc/xpu-vm-drm
	wait_for 100 test -c /dev/dri/renderD128 || { ls -l /dev/dri; return 1; }
	(cd /sys/class/drm && echo *)
}

# What the guest's kernel made, one device a line as xpu-vmdrm prints them: from
# /sys/class/drm the PCI function of each primary node, its render node (of the same device),
# their minors; the driver's name as the DRM core has it (debugfs: dri/MINOR/name,
# "virtio_gpu dev=0000:00:04.0 unique=..."), or with "bound" the driver bound to the device
# (what the lister falls back to).
drm_sysfs() {
	for c in /sys/class/drm/card*; do
		case ${c##*/} in *-*) continue ;; esac # connectors: card0-Virtual-1
		dev=$(readlink -f "$c/device")
		minor=$(cut -d: -f2 "$c/dev")
		if [ "${1:-}" = bound ]; then
			driver=$(basename "$(readlink "$dev/driver")")
		else
			read -r driver _ </sys/kernel/debug/dri/"$minor"/name
		fi
		render="- -1"
		for r in /sys/class/drm/renderD*; do
			[ "$(readlink -f "$r/device")" = "$dev" ] &&
				render="dri/${r##*/} $(cut -d: -f2 "$r/dev")"
		done
		echo "${dev##*/} $driver dri/${c##*/} $minor $render"
	done
}

drm_compare() { # drm_compare "" | bound [ARGS of xpu-vmdrm]: xpu-vmdrm's list is the kernel's
	how=$1
	shift
	xpu-vmdrm "$@" >/tmp/drm.out 2>/tmp/drm.err || { cat /tmp/drm.err; return 1; }
	drm_sysfs "$how" >/tmp/drm.sysfs
	echo "libdrm lister:"
	cat /tmp/drm.out
	echo "kernel:"
	cat /tmp/drm.sysfs
	cmp -s /tmp/drm.out /tmp/drm.sysfs || { echo "they differ"; return 1; }
}

# QEMU's standard VGA (1234:1111) bound by bochs: a primary node only; the virtio-gpu
# (1af4:1050) by virtio_gpu: a primary and a render node. Both through libdrm, the drivers'
# names as drmGetVersion() gives them.
t_drm_libdrm() {
	drm_compare "" || return 1
	[ -s /tmp/drm.err ] && { echo "warnings:"; cat /tmp/drm.err; return 1; }
	if ! vga=$(pci_fn 0x1234 0x1111) || ! gpu=$(pci_fn 0x1af4 0x1050); then
		echo "no VGA or virtio-gpu PCI function"
		return 1
	fi
	grep -q "^$vga bochs-drm dri/card[0-9]* [0-9]* - -1\$" /tmp/drm.out &&
		grep -q "^$gpu virtio_gpu dri/card[0-9]* [0-9]* dri/renderD128 128\$" /tmp/drm.out &&
		[ "$(wc -l </tmp/drm.out)" = 2 ]
}

# As a user for whom the nodes (root's, 0600) do not open: the same list, with the drivers
# bound to the devices in sysfs (the virtio-gpu's PCI function is virtio-pci's: the DRM driver
# sits on the virtio device below it), and a warning naming each device's nodes.
t_drm_libdrm_user() {
	ls -l /dev/dri
	drm_compare bound --uid 65534 || return 1
	echo "warnings:"
	cat /tmp/drm.err
	denied="not answer (Permission denied): the driver from /sys/class/drm/[a-zD0-9]*/device/driver"
	grep -q "DRM nodes /dev/dri/renderD128 and /dev/dri/card[0-9]* do $denied: virtio-pci\.$" \
		/tmp/drm.err &&
		grep -q "DRM node /dev/dri/card[0-9]* does $denied: bochs-drm\.$" /tmp/drm.err
}

echo "@@GUEST up: $(uname -r)"
ADDR=$(edu_addr)
echo "edu at ${ADDR:-nowhere}"
check "DRM drivers load (bochs, virtio_gpu)" t_drm_load
check "libdrm lister: the guest's DRM devices, nodes and drivers" t_drm_libdrm
check "libdrm lister: nodes that do not open, the drivers from sysfs" t_drm_libdrm_user
xpud_start
check "xpud started before the module waits for it" t_xpud_waits
check "module loads" t_load
check "module binds edu and reads its id register" t_bound
check "sysfs attributes" t_attrs
check "/dev/xpu/0 and the info ioctl" t_devnode
check "factorial through the ioctl and the completion interrupt" t_factorial
check "liveness probe passes" t_liveness
check "generic netlink dump" xpu-vmcheck genl-dump
check "xpud lists the device through generic netlink, healthy (the module loaded after it)" \
	t_xpud_start
check "xpud lists the virtio-gpu through libdrm, with its DRM nodes and driver" t_xpud_drm
check "bad ioctl arguments are refused" xpu-vmcheck bad-ioctl $DEV
check "malformed netlink requests are refused" xpu-vmcheck genl-bad
check "QMP hot-unplug: removed event reported by xpud" t_unplug
check "QMP hot-plug: device back in xpud" t_plug
check "open file of a removed device gets ENODEV" xpu-vmcheck removed $DEV "$ADDR"
wait_for 50 present
ADDR=$(edu_addr)
check "liveness failure: unhealthy and back in xpud too, while it probes every 200 ms" t_fake_fail
check "fuzz ioctl and netlink handlers for ${FUZZ_SECONDS}s" xpu-vmcheck fuzz $DEV "$FUZZ_SECONDS" "$FUZZ_SEED"
check "device works after the fuzzing" xpu-vmcheck factorial $DEV 6 720
check "reset-when-idle off: an unhealthy device is not reset" t_reset_off
xpud_reset_on
check "reset-when-idle: xpud resets the idle device once, probation, healthy" t_reset_idle
check "reset-when-idle: an allocated device is reset only after its release" t_reset_busy
check "rmmod succeeds while xpud probes every 200 ms" t_rmmod_xpud
check "xpud follows the reloaded module without a restart" t_reload_xpud
kill "$XPUD_PID" 2>/dev/null
wait "$XPUD_PID" 2>/dev/null
check "rmmod refused while a file is open" t_rmmod_busy
check "load/unload cycles without leaks" t_load_cycles
check "remove/rescan cycles without leaks" t_replug_cycles
check "QMP unplug/plug cycles without leaks" t_qmp_cycles
check "rmmod is clean" t_rmmod
echo "@@RESULT pass=$pass fail=$fail"
sync
poweroff -f
