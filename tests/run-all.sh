#!/bin/sh
# Every test but the ones that need real hardware: warnings as errors, ASan+UBSan, then the
# fuzzers for a bounded time, then the benchmarks' smoke run. CI runs exactly this.
set -eu
cd "$(dirname "$0")/.."
./tests/deps.sh test
jobs=$(nproc)

cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=Debug -DXPU_WERROR=ON -DXPU_SANITIZE=ON >/dev/null
cmake --build build-ci -j"$jobs"
ctest --test-dir build-ci --output-on-failure -j"$jobs" -LE 'gpu|fuzz|soak'
# The soak: five minutes of mixed load on xpud alone, its RSS and descriptors checked flat.
ctest --test-dir build-ci --output-on-failure -L soak

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DXPU_WERROR=ON -DXPU_FUZZ=ON \
	-DXPU_TESTS=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
ctest --test-dir build-fuzz --output-on-failure -L fuzz

# The kernel module: udev rules' syntax, then the module in a QEMU guest (a few minutes).
./udev/check.sh
./tests/vm/run.sh
