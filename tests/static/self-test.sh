#!/bin/sh
# Proves that tests/static/check.sh can fail: in a temporary copy of the sources, a file passes
# as it is, then a planted null dereference fails clang-tidy and a planted out-of-bounds write
# fails cppcheck, each naming its check.
#
#   tests/static/self-test.sh BUILD_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$1
for t in clang-tidy cppcheck; do
	command -v "$t" >/dev/null || { echo "$t is not installed; skipping." >&2; exit 77; }
done
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -r "$root/agent" "$root/include" "$root/.clang-tidy" "$copy/"
victim=agent/core/device.c
cp "$copy/$victim" "$copy/victim.orig"

# check TOOLS [CHECK]: without CHECK the copy must pass; with it, fail and name CHECK
check() {
	if XPU_STATIC_TOOLS=$1 XPU_STATIC_SRC=$copy "$here/check.sh" "$build" "$victim" \
		>"$copy/out" 2>&1; then
		[ $# -eq 1 ] && { echo "ok: $victim passes $1"; return 0; }
		cat "$copy/out"
		echo "FAIL: $1 passed a planted $2" >&2
		exit 1
	fi
	if [ $# -eq 1 ] || ! grep -q "\[$2" "$copy/out"; then
		cat "$copy/out"
		echo "FAIL: $1 failed${2:+, but not with $2}" >&2
		exit 1
	fi
	echo "ok: $1 finds the planted $2"
}

check "clang-tidy cppcheck"

cat >>"$copy/$victim" <<'C'

int static_self_test_null(int pick);
int static_self_test_null(int pick)
{
	int *p = pick ? &pick : NULL;

	return pick ? 0 : *p;
}
C
check clang-tidy clang-analyzer-core.NullDereference

cp "$copy/victim.orig" "$copy/$victim"
cat >>"$copy/$victim" <<'C'

int static_self_test_bounds(void);
int static_self_test_bounds(void)
{
	int a[4];

	a[4] = 1;
	return a[0];
}
C
check cppcheck arrayIndexOutOfBounds
