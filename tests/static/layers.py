#!/usr/bin/python3
"""The layers of agent/, checked over its #include "..." lines: a file may include its own
folder's headers, the public headers (include/xpu/) and those of the layers below its own, never
one above and never a peer's (api/ and kube/). Prints FILE:LINE: what it includes and why that
may not be, for each such include, and exits 1 if there is any; 0 when there is none.

The build enforces the same order (each layer's headers are on the include path of the layers
above it only, CMakeLists.txt's xpu_layer()); this check names the offending line before a
compiler does, and covers files the build does not compile.

Usage: layers.py [ROOT]   (ROOT: the source tree, default: the one holding this script)
"""
import os
import re
import sys

sys.dont_write_bytecode = True
import srccheck  # noqa: E402

# Bottom to top. A folder may include the folders listed for it; a folder of agent/ missing here
# is an error until it is given its place.
RANK = {
    "shared": 0,  # utilities: cleanup macros, logging, parsers, files, the helper process
    "sim": 1,  # simulated nodes (the fixture builder): shared only
    "core": 1,  # device model, inventory, planner, allocator, state, configuration
    "backends": 2,  # the ops struct, the registry, one file per source
    "runtimes": 2,  # the vendor runtimes' side of the backends, in xpud-helper only
    "services": 3,  # what the front ends call: allocations, repartition, recovery
    "api": 4,  # front end: the local socket API
    "kube": 4,  # front end: device plugin, CDI, NFD
    "daemon": 5,  # the composition root: the event loop and the wiring
    "xpud.c": 6,  # the daemon's main file
    "xpud-helper.c": 3,  # the helper's main file: runtimes and below, never the daemon's
    "lib": 1,  # libxpu, the client library: shared only
    "xpuctl": 2,  # the command line client: libxpu and shared only
}
ALLOWED = {
    "shared": {"shared"},
    "sim": {"shared", "sim"},
    "core": {"shared", "core"},
    "backends": {"shared", "core", "backends"},
    "runtimes": {"shared", "core", "runtimes"},
    "services": {"shared", "core", "backends", "services"},
    "api": {"shared", "core", "backends", "services", "api"},
    "kube": {"shared", "core", "backends", "services", "kube"},
    "daemon": {"shared", "core", "backends", "services", "api", "kube", "daemon"},
    "xpud.c": {"shared", "sim", "core", "backends", "services", "api", "kube", "daemon"},
    "xpud-helper.c": {"shared", "core", "runtimes"},
    "lib": {"shared", "lib"},
    "xpuctl": {"shared", "lib", "xpuctl"},
}
PUBLIC = "xpu"  # include/xpu/: the public headers, for everyone

# Includes allowed against the layering, each with the reason (none: keep it so).
EXCEPTIONS = set()

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(rel):
    """The layer key of a path relative to agent/: its first folder, or a top-level file."""
    return rel.split("/", 1)[0]


def why(own, target):
    if target not in RANK:
        return f"{target}/ is no folder of agent/ with a layer"
    if RANK[target] > RANK[own]:
        return f"{own} may not include {target}, a layer above it"
    if RANK[target] == RANK[own]:
        return f"{own} may not include {target}: they are peers"
    return f"{own} may include only {', '.join(sorted(ALLOWED[own]))}"


def check(root):
    agent = os.path.join(root, "agent")
    problems = []
    used = set()
    for name in sorted(os.listdir(agent)):
        if name not in ALLOWED and (os.path.isdir(os.path.join(agent, name))
                                    or name.endswith((".c", ".h"))):
            problems.append(f"agent/{name}: has no layer: give it one in tests/static/layers.py")
    for top, dirs, files in os.walk(agent):
        dirs.sort()
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(top, f)
            rel = os.path.relpath(path, agent)
            own = layer_of(rel)
            if own not in ALLOWED:
                continue  # reported above
            shown = "agent/" + rel
            with open(path, encoding="utf-8", errors="replace") as fh:
                for n, line in enumerate(fh, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    beside = os.path.normpath(os.path.join(top, inc))
                    if os.path.exists(beside) or "/" not in inc:
                        # found beside the including file: its layer is where it lies
                        target = layer_of(os.path.relpath(beside, agent))
                    elif inc.split("/", 1)[0] == PUBLIC:
                        continue
                    else:
                        target = inc.split("/", 1)[0]
                    if target in ALLOWED.get(own, ()):
                        continue
                    if (shown, inc) in EXCEPTIONS:
                        used.add((shown, inc))
                        continue
                    problems.append(f"{shown}:{n}: includes {inc}: {why(own, target)}")
    for shown, inc in sorted(EXCEPTIONS - used):
        print(f"note: {shown} no longer includes {inc}: remove it from EXCEPTIONS")
    return problems


if __name__ == "__main__":
    sys.exit(srccheck.run(check, "layers", "every include goes down a layer or stays in its own",
                          "include(s) cross a layer the wrong way "
                          "(docs/architecture.md, \"Layers\")"))
