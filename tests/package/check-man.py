#!/usr/bin/python3
"""The man pages against the programs they describe (test-man).

    check-man.py XPUD XPUCTL MAN_SOURCES [BUILT_PAGES]

- xpud(8): the options of `xpud --help` are the options of its OPTIONS section.
- xpuctl(1): the options of `xpuctl --help` are those of its OPTIONS section; the commands of
  `xpuctl --help` are its COMMANDS subsections; each command's options, as xpuctl's usage
  message for that command lists them, are the options of its subsection.
- xpud.yaml(5): the top-level keys xpud's configuration parser accepts (it lists them when
  `xpud --check-config` meets an unknown key) are the keys of its KEYS section, and the keys of
  each mapping (a section, a partition rule, match, memory-shares, a shape) are those of the
  subsection named after it.
- With BUILT_PAGES (the directory of the pages scdoc made): `man --warnings` says nothing.

In the scdoc sources, options and keys are the terms of definitions: in bold on a line that
starts in bold and is followed by the definition's tab-indented text (`*--socket* _PATH_`,
`*health-interval*`).
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xpuhelp import (OPTION, fail, failures, help_options, help_section, run,  # noqa: E402
                     xpuctl_commands, xpuctl_command_options)


def man_blocks(path):
    """{(level, title): [lines]} of an scdoc source: level 1 for '# ', 2 for '## '."""
    blocks, key = {}, (0, "")
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            m = re.match(r"^(#{1,2}) (.*)$", line)
            if m:
                key = (len(m.group(1)), m.group(2).strip())
                blocks[key] = []
            else:
                blocks.setdefault(key, []).append(line)
    return blocks


def man_terms(lines, pattern):
    """The names in bold on the term lines of definitions (a line that starts in bold, followed
    by its tab-indented text): `*-o*, *--output* _FORMAT_` gives -o and --output (pattern: what
    a name looks like)."""
    terms = set()
    for line, following in zip(lines, lines[1:]):
        if line.startswith("*") and following.startswith("\t"):
            terms.update(t for t in re.findall(r"\*([^*]+)\*", line) if re.fullmatch(pattern, t))
    return terms


def compare(what, program, man):
    if program != man:
        missing = sorted(program - man)
        extra = sorted(man - program)
        fail(f"{what}: not in the man page: {missing or '-'}; "
             f"in the man page but not the program: {extra or '-'}")


def subsections(blocks, section):
    """The '## ' blocks between the '# section' block and the next '# ' block."""
    out, inside = {}, False
    for (level, title), lines in blocks.items():
        if level == 1:
            inside = title == section
        elif inside:
            out[title] = lines
    return out


def check_options(program, man_dir, page):
    """The options of `program --help` against the OPTIONS of its man page; returns the help
    and the page's blocks (None, None when the program gives no help)."""
    rc, out, _ = run([program, "--help"])
    if rc != 0:
        fail(f"{program} --help: status {rc}")
        return None, None
    blocks = man_blocks(os.path.join(man_dir, page + ".scd"))
    compare(f"{page} OPTIONS", help_options(help_section(out, "Options")),
            man_terms(blocks[(1, "OPTIONS")], OPTION))
    return out, blocks


def check_xpuctl(xpuctl, man_dir):
    out, blocks = check_options(xpuctl, man_dir, "xpuctl.1")
    if out is None:
        return
    commands = xpuctl_commands(out)
    man_commands = subsections(blocks, "COMMANDS")
    compare("xpuctl(1) COMMANDS", commands, {t.split()[0] for t in man_commands})

    fit_options = xpuctl_command_options(xpuctl, "fit", set())
    for command in sorted(commands):
        man_opts = set()
        for title, lines in man_commands.items():
            if title.split()[0] == command:
                man_opts |= man_terms(lines, OPTION)
        compare(f"xpuctl(1) options of '{command}'",
                xpuctl_command_options(xpuctl, command, fit_options), man_opts)


def known_keys(xpud, yaml_text, where):
    """The keys xpud's parser lists for a mapping, given a document with an unknown key in it."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(yaml_text)
        f.flush()
        rc, out, err = run([xpud, "--check-config", f.name])
    m = re.search(r"unknown key 'zz-not-a-key'" + re.escape(where) + r" \(known: ([^)]*)\)",
                  out + err)
    if rc != 1 or not m:
        return None
    return set(k.strip() for k in m.group(1).split(","))


def check_config(xpud, man_dir):
    blocks = man_blocks(os.path.join(man_dir, "xpud.yaml.5.scd"))
    key = r"[a-z0-9][a-z0-9-]*"
    top = known_keys(xpud, "zz-not-a-key: 1\n", "")
    if top is None:
        fail("xpud --check-config does not list the known keys of an unknown one")
        return
    compare("xpud.yaml(5) KEYS", top, man_terms(blocks[(1, "KEYS")], key))

    # Every mapping the parser knows, and where it says so: the sections by their name, and the
    # mappings within lists.
    probes = {k: (f"{k}:\n  zz-not-a-key: 1\n", f" in {k}") for k in sorted(top)}
    probes["partitions"] = ("partitions:\n  - zz-not-a-key: 1\n", " in a partition rule")
    probes["shapes"] = ("shapes:\n  - zz-not-a-key: 1\n", " in a shape")
    probes["match"] = ("partitions:\n  - match: {zz-not-a-key: 1}\n    whole: true\n",
                       " in match")
    probes["memory-shares"] = ("partitions:\n  - match: all\n"
                               "    memory-shares: {zz-not-a-key: 1}\n", " in memory-shares")
    mappings = {}
    for name, (text, where) in probes.items():
        keys = known_keys(xpud, text, where)
        if keys is not None:
            mappings[name] = keys
    for name in ("partitions", "shapes", "match", "memory-shares", "nvidia"):
        if name not in mappings:
            fail(f"xpud --check-config does not list the keys of '{name}'")
    documented = {title: man_terms(lines, key)
                  for (level, title), lines in blocks.items() if level == 2}
    for name, keys in sorted(mappings.items()):
        compare(f"xpud.yaml(5) keys of '{name}'", keys, documented.get(name, set()))
    for name, terms in sorted(documented.items()):
        if terms and name not in mappings:
            fail(f"xpud.yaml(5) documents keys of '{name}', which xpud's parser does not know")


def check_warnings(built):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    pages = sorted(os.listdir(built))
    if len(pages) != 3:
        fail(f"expected 3 man pages in {built}, found {pages}")
    for page in pages:
        p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z",
                            os.path.join(built, page)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, env=env)
        if p.returncode != 0 or p.stderr:
            fail(f"man --warnings {page}: status {p.returncode}: {p.stderr.strip()}")


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    xpud, xpuctl, man_dir = sys.argv[1:4]
    check_options(xpud, man_dir, "xpud.8")
    check_xpuctl(xpuctl, man_dir)
    check_config(xpud, man_dir)
    if len(sys.argv) == 5:
        check_warnings(sys.argv[4])
    if failures:
        print(f"{len(failures)} difference(s) between the man pages and the programs",
              file=sys.stderr)
        return 1
    print("the man pages agree with xpud --help, xpuctl --help and the configuration parser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
