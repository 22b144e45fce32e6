#!/bin/sh
# Runs xpud on this host's real /sys with the real NVML and compares what it reports with
# nvidia-smi, field by field. Changes nothing on the GPU (read-only queries only).
# Also prints xpud's time to READY (sd_notify), to its first answer and to the CUDA facts, and
# its resident memory and threads once settled, and what one run of the NVML helper (xpud-helper,
# found next to XPUD: one health cycle) costs.
#
# Usage: check-nvidia.sh XPUD XPUCTL      (exit 0: all match, 1: a mismatch, 77: no NVIDIA GPU)
set -eu
xpud=${1:?usage: check-nvidia.sh XPUD XPUCTL}
xpuctl=${2:?usage: check-nvidia.sh XPUD XPUCTL}
command -v nvidia-smi >/dev/null 2>&1 || { echo "no nvidia-smi: skipping"; exit 77; }
nvidia-smi -L >/dev/null 2>&1 || { echo "nvidia-smi sees no GPU: skipping"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "no python3: skipping"; exit 77; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
nvidia-smi --query-gpu=uuid,name,pci.bus_id,memory.total,compute_cap,mig.mode.current,mig.mode.pending,serial,driver_version \
	--format=csv,noheader,nounits >"$dir/smi.csv"
nvidia-smi mig -lgip >"$dir/lgip.txt" 2>&1 || true
nvidia-smi topo -m >"$dir/topo.txt" 2>&1 || true

python3 - "$dir" "$xpud" "$xpuctl" <<'PY'
import csv, json, os, re, socket, subprocess, sys, time
d, xpud, xpuctl = sys.argv[1:4]
sock = f"{d}/xpud.sock"

notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(f"{d}/notify")
notify.settimeout(30)
env = dict(os.environ, NOTIFY_SOCKET=f"{d}/notify")
t0 = time.monotonic()
proc = subprocess.Popen([xpud, "--socket", sock, "--config", "/dev/null", "--log-level", "info",
                         "--state-dir", f"{d}/state", "--cdi-dir", f"{d}/cdi",
                         "--nfd-dir", f"{d}/nfd", "--kubelet-dir", f"{d}/kubelet"],
                        env=env, stderr=open(f"{d}/xpud.log", "w"))
def ctl(*args):
    return subprocess.run([xpuctl, "--socket", sock, *args], capture_output=True, text=True)
def status():
    return {k: v.strip() for k, v in (l.split(":", 1) for l in open(f"/proc/{proc.pid}/status"))}
def cpu_ticks():
    f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
try:
    ready = None
    while ready is None:
        msg = notify.recv(4096).decode()
        if "READY=1" in msg.split("\n"):
            ready = (time.monotonic() - t0) * 1000
    while ctl("version").returncode != 0:
        time.sleep(0.005)
    first = (time.monotonic() - t0) * 1000
    cuda = None
    for _ in range(1000):
        devs = json.loads(ctl("-o", "json", "devices").stdout)["devices"]
        if any("cuda_ordinal" in x.get("properties", {}) for x in devs):
            cuda = (time.monotonic() - t0) * 1000
            break
        time.sleep(0.01)
    time.sleep(1)
    st = status()
    idle_s, ticks = 10, cpu_ticks()
    time.sleep(idle_s)
    idle_cpu = (cpu_ticks() - ticks) / os.sysconf("SC_CLK_TCK") / idle_s * 100
    maps, name = {}, None
    for l in open(f"/proc/{proc.pid}/smaps"):
        f = l.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", l):
            name = f[5] if len(f) > 5 else "[anon]"
        elif f[0] == "Rss:":
            maps[name] = maps.get(name, 0) + int(f[1])
    maps = sorted(((kib, n) for n, kib in maps.items()), reverse=True)
    backends = ctl("-o", "json", "version").stdout
    devs = {x["id"]: x for x in json.loads(ctl("-o", "json", "devices").stdout)["devices"]}
    show = {i: ctl("device", i).stdout for i in devs}
finally:
    proc.terminate()
    proc.wait()

bad = 0
def check(what, ours, theirs):
    global bad
    ok = ours == theirs
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what:34} xpud={ours!r:44} nvidia-smi={theirs!r}")
rows = list(csv.reader(open(f"{d}/smi.csv"), skipinitialspace=True))
for row in rows:
    uuid, name, bus, mem, cc, mig, pend, serial, drv = [c.strip() for c in row]
    addr = bus.lower()[-12:]
    dev = devs.get(addr)
    if not dev:
        print(f"FAIL {addr}: not reported by xpud"); bad += 1; continue
    props = dev.get("properties", {})
    check(f"{addr} backend", dev["backend"], "nvidia")
    check(f"{addr} uuid", dev["uuid"], uuid)
    check(f"{addr} name", dev["model"], name)
    check(f"{addr} pci.bus_id", dev["pci"]["address"], addr)
    check(f"{addr} memory.total MiB", (dev["memory_bytes"] or 0) // (1 << 20), int(mem))
    check(f"{addr} compute_cap", props.get("compute_capability"), cc)
    check(f"{addr} serial", props.get("serial"), serial)
    check(f"{addr} driver_version", props.get("driver_version"), drv)
    check(f"{addr} health", dev["health"]["state"], "healthy")
    if mig not in ("[N/A]", "N/A"):
        check(f"{addr} mig.mode.current", props.get("mig_mode"), mig.lower())
        check(f"{addr} mig.mode.pending", props.get("mig_mode_pending"), pend.lower())
    ours = dict(p.split("=") for p in props.get("mig_profiles", "").split(",") if p)
    for m in re.finditer(r"MIG (\S+)\s+\d+\s+(\d+)/(\d+)", open(f"{d}/lgip.txt").read()):
        check(f"{addr} profile {m.group(1)}", ours.get(m.group(1)), f"{m.group(2)}/{m.group(3)}")
    print(f"     {addr} xpuctl device:\n" + "\n".join("       " + l for l in show[addr].splitlines()))
print("nvidia-smi mig -lgip:\n" + "\n".join("       " + l for l in open(f"{d}/lgip.txt").read().splitlines()))
print("xpuctl version:", backends.strip())
print(f"GPUs: {len(rows)}; READY after {ready:.0f} ms, first answer after {first:.0f} ms, "
      f"CUDA facts after {cuda:.0f} ms" if cuda else "CUDA facts never arrived")
print(f"xpud resident memory, settled: VmRSS {st['VmRSS']} (anon {st['RssAnon']}, "
      f"file {st['RssFile']}, shmem {st['RssShmem']}), peak VmHWM {st['VmHWM']}, "
      f"threads {st['Threads']}")
print(f"xpud CPU while idle: {idle_cpu:.2f}% of one core over {idle_s} s")
# what one health cycle costs: one run of the NVML helper (next to xpud), wall and CPU
helper = os.path.join(os.path.dirname(xpud), "xpud-helper")
if os.access(helper, os.X_OK):
    walls, cpus = [], []
    for _ in range(10):
        t0, r0 = time.monotonic(), os.times()
        subprocess.run([helper, "nvml", "libnvidia-ml.so.1", "enumerate"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        r1 = os.times()
        walls.append((time.monotonic() - t0) * 1000)
        cpus.append((r1.children_user + r1.children_system - r0.children_user -
                     r0.children_system) * 1000)
    walls.sort(); cpus.sort()
    print(f"one NVML helper run (a health cycle): wall median {walls[5]:.1f} ms "
          f"(max {walls[-1]:.1f}), CPU median {cpus[5]:.1f} ms")
print("largest mappings (KiB resident):")
for kib, name in maps[:8]:
    print(f"  {kib:8} {name}")
if bad:
    print(open(f"{d}/xpud.log").read())
sys.exit(1 if bad else 0)
PY
