#!/bin/sh
# Proves that tests/static/layers.py can fail: on a copy of agent/, the tree as it is passes; an
# include that goes up a layer, one across between the front ends and a folder without a layer
# each fail, named by file, line and reason.
#
#   tests/static/layers-self-test.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -r "$root/agent" "$copy/"

# expect_fail WHAT: the copy must fail, and the output name WHAT
expect_fail() {
	if "$here/layers.py" "$copy" >"$copy/out" 2>&1; then
		cat "$copy/out"
		echo "FAIL: layers.py passed a planted $1" >&2
		exit 1
	fi
	if ! grep -qF "$1" "$copy/out"; then
		cat "$copy/out"
		echo "FAIL: layers.py failed, but did not say: $1" >&2
		exit 1
	fi
	echo "ok: $1"
}

# planted FILE LINE WHAT: with LINE after FILE's first line, the copy fails saying WHAT
planted() {
	cp "$copy/$1" "$copy/planted.orig"
	sed -i "1a $2" "$copy/$1"
	expect_fail "$3"
	mv "$copy/planted.orig" "$copy/$1"
}

if ! "$here/layers.py" "$copy" >"$copy/out" 2>&1; then
	cat "$copy/out"
	echo "FAIL: layers.py fails on the tree as it is" >&2
	exit 1
fi
echo "ok: the tree as it is passes"

planted agent/core/device.c '#include "api/api.h"' \
	'agent/core/device.c:2: includes api/api.h: core may not include api, a layer above it'
planted agent/backends/pci.c '#include "services/allocations.h"' \
	'agent/backends/pci.c:2: includes services/allocations.h: backends may not include services,'
# the exceptions name a file and a header: another file of the same front end is not excused
planted agent/api/api.c '#include "kube/cdi.h"' \
	'agent/api/api.c:2: includes kube/cdi.h: api may not include kube: they are peers'
planted agent/shared/log.c '#include "../core/device.h"' \
	'agent/shared/log.c:2: includes ../core/device.h: shared may not include core, a layer above it'

mkdir "$copy/agent/export"
echo '#include "shared/log.h"' >"$copy/agent/export/metrics.c"
expect_fail 'agent/export: has no layer'
rm -r "$copy/agent/export"
