#!/usr/bin/python3
"""Validates documents of `xpuctl export json` against docs/export.schema.json (JSON Schema
draft 2020-12). Exits 0 (all valid), 1 (a document is invalid: each problem printed), or 77
(python3-jsonschema is not installed: skip).
Usage: validate-export.py SCHEMA FILE..."""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("skip: python3-jsonschema is not installed")
    sys.exit(77)


def main(schema_path, files):
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    bad = 0
    for path in files:
        with open(path) as f:
            doc = json.load(f)
        for err in validator.iter_errors(doc):
            print(f"{path}: /{'/'.join(str(p) for p in err.absolute_path)}: {err.message}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
