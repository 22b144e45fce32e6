#!/bin/sh
# Builds the grpc-go client that plays kubelet (kubelet.go) offline from Debian's packages and
# runs it against xpud. Exits 77 (skipped) when Go, grpc-go or protoc are missing.
# Usage: run.sh SOURCE_DIR BUILD_DIR [kubelet.go flags...]
set -eu
src=$1
build=$2
shift 2
gocode=/usr/share/gocode
for tool in go protoc protoc-gen-go; do
	command -v "$tool" >/dev/null 2>&1 || { echo "skip: $tool is missing"; exit 77; }
done
[ -d "$gocode/src/google.golang.org/grpc" ] || { echo "skip: golang-google-grpc-dev missing"; exit 77; }

gopath=$build/gopath
pkg=$gopath/src/xpu.dev/tests/k8s
mkdir -p "$pkg/v1beta1" "$pkg/kubelet" "$build/gocache"
protoc --go_out=plugins=grpc,paths=source_relative:"$pkg/v1beta1" \
	--proto_path="$src/agent/kube" "$src/agent/kube/deviceplugin-v1beta1.proto"
cp "$src/tests/k8s/kubelet.go" "$pkg/kubelet/main.go"
cp "$src/tests/k8s/kubelet-amd.go" "$pkg/kubelet/amd.go"
cp "$src/tests/k8s/kubelet-fpga.go" "$pkg/kubelet/fpga.go"
GO111MODULE=off GOPATH="$gopath:$gocode" GOCACHE="$build/gocache" GOFLAGS= \
	go build -o "$build/kubelet-sim" xpu.dev/tests/k8s/kubelet
exec "$build/kubelet-sim" "$@"
