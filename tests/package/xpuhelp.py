"""What xpud and xpuctl say about themselves: their --help and xpuctl's usage messages, for the
checks of the man pages and of the bash completion against them."""
import re
import subprocess
import sys

OPTION = r"--?[A-Za-z0-9][\w-]*"
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout, p.stderr


def help_section(text, title):
    """The lines of `title:` in a --help text, up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(title + ":") + 1
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return lines[start:end]


def help_options(lines):
    """Options of --help lines: each option line starts with them, within a few columns."""
    opts = set()
    for line in lines:
        m = re.match(r"^ {2,7}((?:--?[A-Za-z0-9][\w-]*[ ,]*)+)", line)
        if m:
            opts.update(re.findall(r"--?[A-Za-z0-9][\w-]*", m.group(1)))
    return opts


def xpuctl_commands(help_text):
    """The command names of `xpuctl --help`: the first word of each entry of its Commands list
    (an entry may name several: "alloc, release, allocations, ...")."""
    commands = set()
    for line in help_section(help_text, "Commands"):
        m = re.match(r"^  ([a-z][a-z, -]*?)(?:  |\s*$| [A-Z\[])", line)
        if m:
            commands.update(w.split()[0] for w in m.group(1).split(", "))
    return commands


def xpuctl_command_options(xpuctl, command, fit_options):
    """The options of one command, from its usage message (too many arguments for any)."""
    rc, _, err = run([xpuctl, command, "x", "y", "z"])
    m = re.search(r"usage: xpuctl (.*?) \(see xpuctl --help\)", err)
    if rc != 1 or not m:
        fail(f"xpuctl {command} x y z: expected the command's usage, got status {rc}: {err!r}")
        return set()
    usage = m.group(1)
    opts = set(re.findall(r"--[a-z][\w-]*", usage))
    if "FIT OPTIONS" in usage:
        opts |= fit_options
    return opts
