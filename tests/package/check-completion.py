#!/usr/bin/python3
"""xpuctl's bash completion, sourced in bash and called as bash calls it (test-bash-completion).

    check-completion.py COMPLETION_FILE XPUD XPUCTL

- Sourcing it registers `complete -F _xpuctl xpuctl`.
- `xpuctl de<TAB>` offers devices and device; `xpuctl <TAB>` every command of `xpuctl --help`.
- `xpuctl COMMAND --<TAB>` offers xpuctl's long options and exactly the options that xpuctl's
  usage message of COMMAND lists; `-o <TAB>` the output formats.
- With xpud running on a simulated node, `xpuctl --socket S device 0000:1<TAB>` offers its
  devices' IDs, and `xpuctl --socket S release <TAB>` the allocations'.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xpuhelp import (fail, failures, help_options, help_section, run,  # noqa: E402
                     xpuctl_command_options, xpuctl_commands)

completion = None
path = os.environ.get("PATH", "")


def complete(line):
    """What the completion offers for `line` (its last word is the one being completed)."""
    words = line.split(" ")
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _xpuctl; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", completion] + words,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, PATH=path), timeout=30)
    if p.returncode != 0 or p.stderr:
        fail(f"completing '{line}': status {p.returncode}: {p.stderr.strip()}")
    return set(w for w in p.stdout.splitlines() if w)


def expect(line, want):
    got = complete(line)
    if got != want:
        fail(f"completing '{line}': expected {sorted(want)}, got {sorted(got)}")


def check_registered():
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                        'source "$1" && complete -p xpuctl', "bash", completion],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.stdout.strip() != "complete -F _xpuctl xpuctl":
        fail(f"complete -p xpuctl: {p.stdout.strip()!r} {p.stderr.strip()!r}")


def check_against_xpuctl(xpuctl):
    rc, out, _ = run([xpuctl, "--help"])
    if rc != 0:
        fail(f"xpuctl --help: status {rc}")
        return
    commands = xpuctl_commands(out)
    long_global = {o for o in help_options(help_section(out, "Options")) if o.startswith("--")}

    expect("xpuctl de", {"devices", "device"})
    expect("xpuctl ", commands)
    expect("xpuctl --no-legend -o json ", commands)
    expect("xpuctl -o ", {"table", "json"})
    expect("xpuctl export ", {"slurm", "json"})

    fit_options = xpuctl_command_options(xpuctl, "fit", set())
    for command in sorted(commands):
        want = xpuctl_command_options(xpuctl, command, fit_options)
        if command == "export":
            got = complete("xpuctl export slurm --") | complete("xpuctl export json --")
        else:
            got = complete(f"xpuctl {command} --")
        if got - want != long_global or not want <= got:
            fail(f"completing 'xpuctl {command} --': expected {sorted(want | long_global)}, "
                 f"got {sorted(got)}")


def check_ids(xpud, xpuctl):
    """IDs asked of a running xpud, through the socket named on the command line."""
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "xpud.sock")
        log = open(os.path.join(tmp, "xpud.log"), "w")
        daemon = subprocess.Popen([xpud, "--simulate", "hgx-h100", "--socket", sock],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                if run([xpuctl, "--socket", sock, "version"])[0] == 0:
                    break
                time.sleep(0.1)
            else:
                fail("xpud --simulate hgx-h100 did not answer")
                return
            got = complete(f"xpuctl --socket {sock} device 0000:1")
            if "0000:18:00.0" not in got or any(not d.startswith("0000:1") for d in got):
                fail(f"completing a device ID: expected 0000:18:00.0 among 0000:1*, got "
                     f"{sorted(got)}")
            rc, out, err = run([xpuctl, "--socket", sock, "alloc", "nvidia.com/gpu"])
            alloc = next((line.split()[1] for line in out.splitlines()
                          if line.startswith("Allocation:")), None)
            if rc != 0 or not alloc:
                fail(f"xpuctl alloc: status {rc}: {err.strip()}")
                return
            expect(f"xpuctl --socket {sock} release ", {alloc})
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            log.close()


def main():
    global completion, path
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    completion, xpud, xpuctl = (os.path.abspath(a) for a in sys.argv[1:4])
    # the completion runs "xpuctl" from PATH to ask for IDs: the one under test
    path = os.path.dirname(xpuctl) + os.pathsep + path
    check_registered()
    check_against_xpuctl(xpuctl)
    check_ids(xpud, xpuctl)
    if failures:
        print(f"{len(failures)} failure(s) of the bash completion", file=sys.stderr)
        return 1
    print("xpuctl's bash completion offers the commands, options and IDs xpuctl takes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
