"""What tests/static/layers.py and vendor-words.py share: the source tree they read, and how
they report. Imported with bytecode writing off, so the source tree stays clean."""
import os
import sys


def run(check, name, clean, found):
    """Runs @check(root) over argv[1] or the tree holding this file; prints each problem it
    returns on a line of its own. Returns the exit status: 0 (none, @clean said) or 1 (@found
    said, with their count, on stderr)."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..")
    problems = check(os.path.abspath(root))
    for p in problems:
        print(p)
    if problems:
        print(f"{name}: {len(problems)} {found}", file=sys.stderr)
        return 1
    print(f"{name}: {clean}")
    return 0
