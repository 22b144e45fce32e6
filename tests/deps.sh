#!/bin/sh
# Installs what building (and, with "test", testing) xpud needs, from Debian 12's archive.
set -eu
pkgs="build-essential cmake pkg-config libsystemd-dev libjansson-dev libhttp-parser-dev
libyaml-dev libcmocka-dev libnl-genl-3-dev libdrm-dev libnghttp2-dev libprotobuf-c-dev
protobuf-c-compiler"
if [ "${1:-}" = test ]; then
	# Go and grpc-go build the test client that plays kubelet (tests/k8s/); jsonschema checks
	# the CDI specs, yaml the DaemonSet manifest; podman, runc and a static busybox run a
	# container from the CDI specs (test-podman-cdi); clang-tidy and cppcheck are the static
	# analysis (tests/static/), valgrind checks xpud under the integration tests; libxrt1 is
	# XRT, whose software emulation test-xrt runs for real; prometheus (with promtool) checks
	# and scrapes the metrics page (test-metrics); slurmd reads the gres.conf of xpuctl export
	# slurm (test-slurm); tmux is the terminal xpuctl top runs in (test-xpuctl-top); scdoc
	# makes the man pages and man-db checks them (test-man); debhelper, dh-dkms, fakeroot and
	# lintian build and check the Debian packages (tests/package/build-debs.sh)
	pkgs="$pkgs clang libclang-rt-14-dev golang-go golang-google-grpc-dev golang-goprotobuf-dev
protobuf-compiler python3-jsonschema python3-yaml podman runc busybox-static util-linux
clang-tidy cppcheck valgrind libxrt1 prometheus slurmd tmux scdoc man-db debhelper dh-dkms
fakeroot lintian"
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	$sudo apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
fi
