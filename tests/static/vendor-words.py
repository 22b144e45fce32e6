#!/usr/bin/python3
"""No vendor in the core, the services or the front ends: the C sources and headers of
agent/core/, agent/services/, agent/api/ and agent/kube/ must not name a vendor, a vendor's library, environment variable,
partition scheme or product. What a vendor means belongs to its backend (DESIGN.md).

The code is read with its comments removed (/* */ and //, over several lines too); string
literals count as code. It is split into words on everything but letters and digits, and
camelCase words into their parts: json_dumps is "json" and "dumps" (no "mps"), while
CUDA_MPS_PIPE_DIRECTORY, "mig_profiles", "nvidia.com/gpu" and nvmlInit each name a vendor.
A word matches when it is one of WORDS below, ignoring case (a trailing plural "s" too),
unless it is one of ALLOWED.

Prints FILE:LINE: WORD (the code's word), one line for each, and exits 1 if there is any;
0 when there is none.

Usage: vendor-words.py [ROOT]   (ROOT: the source tree, default: the one holding this script)
"""
import os
import re
import sys

sys.dont_write_bytecode = True
import srccheck  # noqa: E402

FOLDERS = ["agent/core", "agent/services", "agent/api", "agent/kube"]

WORDS = {
    # NVIDIA
    "nvidia", "nvml", "cuda", "cudart", "mig", "mps", "xid", "nvlink", "nvswitch",
    "h100", "h200", "a100",
    # AMD
    "amd", "amdgpu", "rocm", "rocr", "hip", "hsa", "kfd", "xgmi", "radeon", "mi300", "mi300x",
    # Intel, Habana
    "intel", "i915", "habana", "gaudi", "hlml",
    # Xilinx (AMD) FPGAs
    "xilinx", "xrt", "xclbin", "alveo", "versal",
    # Google Coral
    "coral", "gasket", "apex", "edgetpu",
    # AWS Neuron
    "neuron", "inferentia", "trainium",
    # Tenstorrent
    "tenstorrent", "grayskull", "wormhole",
}

# Words of a standard that contain a vendor's name but are no vendor's knowledge of ours.
ALLOWED = {
    "intelRdt",  # the CDI and OCI specs' containerEdits field, read to pick a spec's version
}


def strip_comments(text):
    """The text with every comment replaced by spaces, its newlines kept (so lines still count);
    string and character literals are kept as they are."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        two = text[i:i + 2]
        if two == "/*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif two == "//":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def words(line):
    """(part, word) for each part of each word of a line of code."""
    for m in re.finditer(r"[A-Za-z0-9]+", line):
        word = m.group(0)
        if word in ALLOWED:
            continue
        parts = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", word)
        parts = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", parts)
        for part in dict.fromkeys([word, *parts.split()]):
            yield part.lower(), word


def vendor(part):
    return part if part in WORDS else part[:-1] if part.endswith("s") and part[:-1] in WORDS \
        else None


def check(root):
    hits = []
    for folder in FOLDERS:
        for top, dirs, files in os.walk(os.path.join(root, folder)):
            dirs.sort()
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(top, f)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    code = strip_comments(fh.read())
                shown = os.path.relpath(path, root)
                for n, line in enumerate(code.split("\n"), 1):
                    seen = set()
                    for part, word in words(line):
                        v = vendor(part)
                        if v and (v, word) not in seen:
                            seen.add((v, word))
                            hits.append(f"{shown}:{n}: {v} ({word})")
    return hits


if __name__ == "__main__":
    sys.exit(srccheck.run(check, "vendor-words", f"no vendor named in {', '.join(FOLDERS)}",
                          f"vendor word(s) in {', '.join(FOLDERS)}: what a vendor means "
                          "belongs to its backend"))
