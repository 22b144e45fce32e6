#!/bin/sh
# On a host with an NVIDIA GPU: allocates one GPU from xpud (state in a temporary directory) and
# starts a CUDA program with the granted environment; it must see exactly the granted GPU.
# Then releases it. Changes nothing on the GPU.
#
# Usage: check-alloc-env.sh XPUD XPUCTL CUDA_VISIBLE   (exit 0: right GPU, 1: not, 77: no GPU)
set -eu
xpud=${1:?usage: check-alloc-env.sh XPUD XPUCTL CUDA_VISIBLE}
xpuctl=${2:?}
visible=${3:?}
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 || { echo "no GPU: skipping"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "no python3: skipping"; exit 77; }

dir=$(mktemp -d)
# everything xpud writes stays in $dir: state, CDI specs; no labels, no device plugin
"$xpud" --socket "$dir/xpud.sock" --config /dev/null --state-dir "$dir/state" \
	--cdi-dir "$dir/cdi" --nfd-dir "$dir/nfd" --kubelet-dir "$dir/kubelet" 2>"$dir/xpud.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
i=0
until "$xpuctl" --socket "$dir/xpud.sock" version >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 500 ] || { cat "$dir/xpud.log"; exit 1; }; sleep 0.01
done
"$xpuctl" --socket "$dir/xpud.sock" -o json alloc nvidia.com/gpu=1 >"$dir/grant.json"
python3 - "$dir/grant.json" "$visible" <<'PY'
import json, os, subprocess, sys
grant = json.load(open(sys.argv[1]))
env = dict(os.environ, **grant["env"])
out = subprocess.run([sys.argv[2]], env=env, capture_output=True, text=True).stdout.split("\n")
want = grant["env"]["CUDA_VISIBLE_DEVICES"]
seen = [l.split()[1] for l in out if l.startswith("uuid ")]
print("granted:", grant["id"], grant["slices"][0]["id"], "CUDA_VISIBLE_DEVICES=" + want)
print("CUDA sees:", seen)
ok = seen == [want] and all(os.path.exists(n) for n in grant["device_nodes"])
print("ok" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
"$xpuctl" --socket "$dir/xpud.sock" release "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$dir/grant.json")"
echo "state after release:"; cat "$dir/state/state.json"
