#!/bin/sh
# Every test but the ones that need real hardware: warnings as errors, ASan+UBSan, then the
# fuzzers for a bounded time, then the benchmarks' smoke run. CI runs exactly this.
set -eu
cd "$(dirname "$0")/.."
./tests/deps.sh test
jobs=$(nproc)

cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=Debug -DXPU_WERROR=ON -DXPU_SANITIZE=ON >/dev/null
cmake --build build-ci -j"$jobs"
ctest --test-dir build-ci --output-on-failure -j"$jobs" -LE 'gpu|fuzz|soak|static'
# The soak: five minutes of mixed load on xpud alone, its RSS and descriptors checked flat.
ctest --test-dir build-ci --output-on-failure -L soak

# Static analysis of agent/ (clang-tidy and cppcheck over build-ci's compile_commands.json,
# tests/static/), with the proof that it fails on a planted bug; on its own, as it runs
# clang-tidy on every core.
ctest --test-dir build-ci --output-on-failure -L static

# valgrind on xpud under the integration tests, in a build without sanitizers (the two exclude
# each other): the tests start xpud through XPU_TEST_WRAPPER (tests/helpers/testutil.c), which
# fails a test when valgrind reports an error or a definite leak. Left out: test-allocations,
# test-health-phases, test-nvidia and test-reset, whose waits (5-10 s for a dead owner's
# release, the CUDA probe's answer, a reset's events) valgrind's slowdown overruns on a loaded
# machine, and which abandon a hung NVML init thread on purpose; ASan and LeakSanitizer check them in the suite above.
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Debug -DXPU_WERROR=ON >/dev/null
cmake --build build-valgrind -j"$jobs"
XPU_TEST_WRAPPER="valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
--error-exitcode=99" ctest --test-dir build-valgrind --output-on-failure -j"$jobs" -L integration \
	-R 'test-(daemon|api-errors|discovery|hotplug|kube-files|kubelet-checkpoint|mig-layout|repartition)$'

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DXPU_WERROR=ON -DXPU_FUZZ=ON \
	-DXPU_TESTS=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
ctest --test-dir build-fuzz --output-on-failure -L fuzz

# The kernel module: udev rules' syntax, then the module in a QEMU guest (a few minutes).
./udev/check.sh
./tests/vm/run.sh
# The Debian packages under a real systemd in a Debian 12 guest: apt install, DKMS, the hardened
# unit, socket activation, reload, watchdog, reset, upgrade, removal (docs/testing.md).
./tests/vm/systemd/run.sh
