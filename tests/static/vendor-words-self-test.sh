#!/bin/sh
# Proves that tests/static/vendor-words.py finds what it must and only that: in a small tree,
# each planted vendor word is named by file, line and word, while the same words in comments
# (one and several lines), json_dumps and the like pass; without the planted words, the tree
# passes.
#
#   tests/static/vendor-words-self-test.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/agent/core" "$tree/agent/api" "$tree/agent/kube" "$tree/agent/backends"

cat >"$tree/agent/core/clean.c" <<'C'
/* nvidia, cuda and mig in a comment,
 * over lines: amd xilinx habana */
#include <jansson.h> // nvml in a line comment

static char *dump(const json_t *j)
{
	const char *url = "http://example.com/a"; // hip
	const char *rdt = "intelRdt"; /* a field of the CDI spec */

	(void)url, (void)rdt;
	return json_dumps(j, 0); /* "json_dumps" holds no mps */
}
C
cat >"$tree/agent/core/planted.c" <<'C'
#include <stdlib.h>
static void edits(void)
{
	setenv("CUDA_MPS_PIPE_DIRECTORY", "pipes", 1);
	const char *k = "mig_profiles", *r = "nvidia.com/gpu";
	int ret = nvmlInit(); /* a comment after code: amd */
	const char *s = "a /* b"; int xrt_fd = 0; // and no comment opened by the string
}
C
cat >"$tree/agent/api/planted.h" <<'C'
/*
 * A header: over several
 * lines, gaudi.
 */
#define X_AMD_PARTITIONS 1
C
# a backend may name its vendor
echo 'static const char *v = "nvidia";' >"$tree/agent/backends/nvidia.c"
echo 'static const char *tpu = "tenstorrent";' >"$tree/agent/kube/planted.c"

cat >"$tree/want" <<'W'
agent/api/planted.h:5: amd (AMD)
agent/core/planted.c:4: cuda (CUDA)
agent/core/planted.c:4: mps (MPS)
agent/core/planted.c:5: mig (mig)
agent/core/planted.c:5: nvidia (nvidia)
agent/core/planted.c:6: nvml (nvmlInit)
agent/core/planted.c:7: xrt (xrt)
agent/kube/planted.c:1: tenstorrent (tenstorrent)
W
if "$here/vendor-words.py" "$tree" >"$tree/out" 2>&1; then
	cat "$tree/out"
	echo "FAIL: vendor-words.py passed the planted words" >&2
	exit 1
fi
grep -v '^vendor-words:' "$tree/out" | sort >"$tree/got"
if ! diff -u "$tree/want" "$tree/got"; then
	echo "FAIL: vendor-words.py did not name exactly the planted words (- wanted, + got)" >&2
	exit 1
fi
echo "ok: every planted word named, nothing else"

rm "$tree/agent/core/planted.c" "$tree/agent/api/planted.h" "$tree/agent/kube/planted.c"
if ! "$here/vendor-words.py" "$tree" >"$tree/out" 2>&1; then
	cat "$tree/out"
	echo "FAIL: vendor-words.py fails on comments, json_dumps and a backend" >&2
	exit 1
fi
echo "ok: comments, json_dumps, a standard's intelRdt and a backend pass"
