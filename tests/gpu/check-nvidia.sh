#!/bin/sh
# Runs xpud on this host's real /sys with the real NVML and compares what it reports with
# nvidia-smi, field by field. Changes nothing on the GPU (read-only queries only).
#
# Usage: check-nvidia.sh XPUD XPUCTL      (exit 0: all match, 1: a mismatch, 77: no NVIDIA GPU)
set -eu
xpud=${1:?usage: check-nvidia.sh XPUD XPUCTL}
xpuctl=${2:?usage: check-nvidia.sh XPUD XPUCTL}
command -v nvidia-smi >/dev/null 2>&1 || { echo "no nvidia-smi: skipping"; exit 77; }
nvidia-smi -L >/dev/null 2>&1 || { echo "nvidia-smi sees no GPU: skipping"; exit 77; }

dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
start=$(date +%s%N)
"$xpud" --socket "$dir/xpud.sock" --config /dev/null --log-level info 2>"$dir/xpud.log" &
pid=$!
i=0
until "$xpuctl" --socket "$dir/xpud.sock" version >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 600 ] || { cat "$dir/xpud.log"; echo "xpud did not come up"; exit 1; }
	sleep 0.01
done
ready=$(( ($(date +%s%N) - start) / 1000000 ))
"$xpuctl" --socket "$dir/xpud.sock" -o json devices >"$dir/devices.json"
nvidia-smi --query-gpu=uuid,name,pci.bus_id,memory.total,compute_cap,mig.mode.current \
	--format=csv,noheader,nounits >"$dir/smi.csv"
nvidia-smi mig -lgip >"$dir/lgip.txt" 2>&1 || true

python3 - "$dir" "$ready" <<'PY'
import csv, json, re, sys
d, ready = sys.argv[1], sys.argv[2]
devs = {x["id"]: x for x in json.load(open(f"{d}/devices.json"))["devices"]}
bad = 0
def check(what, ours, theirs):
    global bad
    ok = ours == theirs
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what:28} xpud={ours!r:45} nvidia-smi={theirs!r}")
for row in csv.reader(open(f"{d}/smi.csv"), skipinitialspace=True):
    uuid, name, bus, mem, cc, mig = [c.strip() for c in row]
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
    if mig not in ("[N/A]", "N/A"):
        check(f"{addr} mig.mode.current", props.get("mig_mode"), mig.lower())
    ours = dict(p.split("=") for p in props.get("mig_profiles", "").split(",") if p)
    for m in re.finditer(r"MIG (\S+)\s+\d+\s+(\d+)/(\d+)", open(f"{d}/lgip.txt").read()):
        check(f"{addr} profile {m.group(1)}", ours.get(m.group(1)), f"{m.group(2)}/{m.group(3)}")
print(f"xpud ready after {ready} ms (process start to first answer)")
sys.exit(1 if bad else 0)
PY
