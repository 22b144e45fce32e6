#!/bin/sh
# Runs a busybox container with Debian's podman and runc, given CDI device names, and prints
# what it sees: every character device below /dev ("path major minor", hex), a line "--", then
# its environment. The CDI specs are those in CDI_DIR, mounted over /run/cdi in a private mount
# namespace (podman 4.3 has no option for the spec directory); images, containers and podman's
# state stay below WORKDIR. Needs root.
# Usage: podman-cdi.sh WORKDIR CDI_DIR BUSYBOX DEVICE...
set -eu
if [ "${1:-}" != --in-namespace ]; then
	exec unshare --mount --propagation private "$0" --in-namespace "$@"
fi
shift
work=$1 cdi=$2 busybox=$3
shift 3
# A tmpfs over /run hides the host's CDI specs and runtime state; /etc/cdi likewise.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir /run/cdi
mount --bind "$cdi" /run/cdi
if [ -d /etc/cdi ]; then
	mount -t tmpfs tmpfs /etc/cdi
fi
mkdir -p "$work/image/bin" "$work/image/dev" "$work/image/proc" "$work/image/sys" "$work/tmp"
cp "$busybox" "$work/image/bin/busybox"
ln -sf busybox "$work/image/bin/sh"
tar -C "$work/image" -cf "$work/image.tar" .
podman="podman --root $work/storage --runroot $work/runroot --tmpdir $work/tmp
	--storage-driver vfs --cgroup-manager cgroupfs --runtime runc --events-backend file"
$podman import "$work/image.tar" localhost/xpu-test-busybox >/dev/null
devices=""
for d in "$@"; do
	devices="$devices --device $d"
done
# shellcheck disable=SC2086,SC2016 # word-split device flags; $f expands in the container
exec timeout 120 $podman run --rm --network none --log-driver k8s-file \
	--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $devices localhost/xpu-test-busybox \
	/bin/busybox sh -c 'for f in $(busybox find /dev -type c); do
		busybox stat -c "%n %t %T" "$f"; done; echo --; busybox env'
