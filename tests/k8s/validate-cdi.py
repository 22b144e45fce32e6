#!/usr/bin/python3
"""Validates CDI spec files against tests/k8s/cdi-schema.json, and checks what a JSON schema
cannot: device names unique within a spec. Exits 0 (all valid), 1 (a file is invalid: each
problem printed), or 77 (python3-jsonschema is not installed: skip).
Usage: validate-cdi.py SCHEMA FILE..."""
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
    validator = jsonschema.Draft7Validator(schema)
    bad = 0
    for path in files:
        with open(path) as f:
            spec = json.load(f)
        for err in validator.iter_errors(spec):
            print(f"{path}: {'/'.join(str(p) for p in err.absolute_path)}: {err.message}")
            bad += 1
        names = [d.get("name") for d in spec.get("devices", []) if isinstance(d, dict)]
        for n in sorted({n for n in names if names.count(n) > 1}):
            print(f"{path}: device name {n} is not unique")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
