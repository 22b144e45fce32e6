#!/bin/sh
# Static analysis of agent/: clang-tidy with the repository's .clang-tidy, and cppcheck. Fails on
# any finding. Uses the compile_commands.json of a configured and built tree (the build makes the
# generated headers the sources include).
#
#   tests/static/check.sh BUILD_DIR [SOURCE...]
#
# SOURCE: check only these files of agent/ (default: all that the build compiles).
# XPU_STATIC_TOOLS: "clang-tidy", "cppcheck" or both (default).
# XPU_STATIC_SRC: the source tree to check (default: the one holding this script); the
# compile commands are pointed at it.
# Exits 77 (skipped) when a tool is not installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${XPU_STATIC_SRC:-$(cd "$here/../.." && pwd)}
orig=$(cd "$here/../.." && pwd)
tools=${XPU_STATIC_TOOLS:-clang-tidy cppcheck}
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SOURCE...]" >&2; exit 2; }
build=$(cd "$1" && pwd)
shift
db=$build/compile_commands.json
if [ ! -f "$db" ]; then
	echo "$db is missing: configure with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON and build" >&2
	exit 1
fi
for t in $tools; do
	command -v "$t" >/dev/null || { echo "$t is not installed; skipping." >&2; exit 77; }
done
jobs=$(nproc 2>/dev/null || echo 2)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The agent's sources only (not the tests, not generated code), each once, moved to $src.
/usr/bin/python3 - "$db" "$orig" "$src" "$work/compile_commands.json" "$work/files" "$@" <<'PY'
import json, os, sys
db, orig, src, out, files, only = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
want = {os.path.realpath(os.path.join(src, f)) if not os.path.isabs(f) else os.path.realpath(f)
        for f in only}
seen, keep = set(), []
for e in json.load(open(db)):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if not f.startswith(orig + "/agent/"):
        continue
    f = src + f[len(orig):]
    if f in seen or (want and f not in want):
        continue
    seen.add(f)
    e["file"] = f
    e["command"] = e["command"].replace(orig + "/agent", src + "/agent") \
                               .replace(orig + "/include", src + "/include")
    keep.append(e)
missing = want - seen
if missing:
    sys.exit("not compiled by this build: " + " ".join(sorted(missing)))
json.dump(keep, open(out, "w"), indent=1)
open(files, "w").write("".join(e["file"] + "\n" for e in keep))
PY
echo "Checking $(wc -l <"$work/files") files with: $tools"

status=0
for t in $tools; do
	case $t in
	clang-tidy)
		# .clang-tidy's WarningsAsErrors makes every finding fail clang-tidy
		if ! xargs -P"$jobs" -n1 clang-tidy -p "$work" --quiet <"$work/files" \
			>"$work/tidy.out" 2>"$work/tidy.err"; then
			status=1
		fi
		grep -v "warnings generated\|error generated\|errors generated\|Suppressed .* warnings\|Use -header-filter\|^$" \
			"$work/tidy.err" >&2 || true
		cat "$work/tidy.out"
		;;
	cppcheck)
		if ! cppcheck --project="$work/compile_commands.json" --quiet -j"$jobs" \
			--enable=warning,portability --inline-suppr --error-exitcode=1 \
			--library="$here/xpud.cfg" --suppressions-list="$here/cppcheck.supp" \
			--template='{file}:{line}: {severity}: {message} [{id}]' 2>&1; then
			status=1
		fi
		;;
	*)
		echo "unknown tool $t" >&2
		exit 2
		;;
	esac
done
[ $status -eq 0 ] && echo "Static analysis: clean." || echo "Static analysis: findings above." >&2
exit $status
