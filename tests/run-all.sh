#!/bin/sh
# Every test but the ones that need real hardware: warnings as errors, ASan+UBSan, then the
# fuzzers for a bounded time, then the benchmarks' smoke run. CI runs exactly this.
set -eu
cd "$(dirname "$0")/.."
./tests/deps.sh test
jobs=$(nproc)

cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=Debug -DXPU_WERROR=ON -DXPU_SANITIZE=ON >/dev/null
cmake --build build-ci -j"$jobs"
ctest --test-dir build-ci --output-on-failure -j"$jobs" -LE 'gpu|fuzz|static'

# Static analysis of agent/ (clang-tidy and cppcheck over build-ci's compile_commands.json,
# tests/static/), with the proof that it fails on a planted bug; on its own, as it runs
# clang-tidy on every core.
ctest --test-dir build-ci --output-on-failure -L static

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DXPU_WERROR=ON -DXPU_FUZZ=ON \
	-DXPU_TESTS=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
ctest --test-dir build-fuzz --output-on-failure -L fuzz

# The kernel module: udev rules' syntax, then the module in a QEMU guest (a few minutes).
./udev/check.sh
./tests/vm/run.sh
