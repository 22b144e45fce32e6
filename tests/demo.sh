#!/bin/sh
# The main job: build xpud, run it on the bundled simulated HGX H100 node and query it with xpuctl.
set -eu
cd "$(dirname "$0")/.."
./tests/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXPU_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"

dir=$(mktemp -d)
sock="$dir/xpud.sock"
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
./build/xpud --simulate hgx-h100 --socket "$sock" &
pid=$!
# xpud removes nothing and serves once READY; wait for its socket (10 s at most).
i=0
until [ -S "$sock" ] && ./build/xpuctl --socket "$sock" version >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "xpud did not come up" >&2; exit 1; }
	sleep 0.1
done
set -x
./build/xpuctl --socket "$sock" version
./build/xpuctl --socket "$sock" devices
./build/xpuctl --socket "$sock" device 18:00.0
./build/xpuctl --socket "$sock" slices
./build/xpuctl --socket "$sock" capacity
./build/xpuctl --socket "$sock" alloc nvidia.com/gpu=2 --numa-local
./build/xpuctl --socket "$sock" allocations
./build/xpuctl --socket "$sock" capacity
./build/xpuctl --socket "$sock" fit --memory 40GiB
# One GPU withdrawn for maintenance, another cut into a new MIG layout, the rest serving on.
./build/xpuctl --socket "$sock" cordon 5d:00.0 --reason "fan replacement"
./build/xpuctl --socket "$sock" repartition db:00.0 --layout 'mig: [3g.40gb, 3g.40gb]' --wait
./build/xpuctl --socket "$sock" plan
./build/xpuctl --socket "$sock" capacity
