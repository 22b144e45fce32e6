#!/usr/bin/python3
"""Checks deploy/kubernetes/xpud-daemonset.yaml: every directory xpud is told to use (its flags)
lies on a hostPath mount of the same host path, /dev and /sys are mounted, the config the
ConfigMap carries is what --config reads and names the same directories, the liveness probe
asks the daemon through xpuctl, resources are set, and the ConfigMap's xpud.yaml passes
`xpud --check-config` when XPUD_BIN is set. Exits 0, 1 (problems printed) or 77 (no
python3-yaml). Usage: check-deploy.py MANIFEST"""
import os
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("skip: python3-yaml is not installed")
    sys.exit(77)

DIR_FLAGS = ["--kubelet-dir", "--cdi-dir", "--nfd-dir", "--state-dir"]
problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def under(path, mount):
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def main(manifest):
    with open(manifest) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ["Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"]:
        check(len(by_kind.get(kind, [])) == 1, f"expected one {kind}")
    if problems:
        return
    ds = by_kind["DaemonSet"][0]
    pod = ds["spec"]["template"]["spec"]
    check(ds["spec"]["selector"]["matchLabels"].items() <=
          ds["spec"]["template"]["metadata"]["labels"].items(), "selector does not match the pod")
    check(pod.get("serviceAccountName") == by_kind["ServiceAccount"][0]["metadata"]["name"],
          "the pod does not use the ServiceAccount")
    check(pod.get("hostPID") is not True, "hostPID is on: not needed for kubelet's grants")
    check(len(pod["containers"]) == 1, "expected one container")
    c = pod["containers"][0]
    args = dict(a.split("=", 1) for a in c["args"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = c["volumeMounts"]

    def host_path_of(path):
        """The host path a container path lies on, through a hostPath mount (or None)."""
        for m in sorted(mounts, key=lambda m: -len(m["mountPath"])):
            if under(path, m["mountPath"]):
                hp = volumes[m["name"]].get("hostPath")
                if not hp:
                    return None
                return hp["path"] + path[len(m["mountPath"]):]
        return None

    for flag in DIR_FLAGS:
        check(flag in args, f"xpud is not given {flag}")
        if flag in args:
            check(host_path_of(args[flag]) == args[flag],
                  f"{flag}={args[flag]} is not the same host path mounted")
    sock = os.path.dirname(args.get("--socket", ""))
    check(host_path_of(sock) == sock, "the socket's directory is not shared with the host")
    for path in ["/dev", "/sys"]:
        check(host_path_of(path) == path, f"{path} is not mounted from the host")
    check(not any(m.get("readOnly") for m in mounts
                  if host_path_of(m["mountPath"]) and m["mountPath"] != "/etc/xpud"),
          "a directory xpud writes is mounted read-only")
    check(c["securityContext"].get("privileged") is True, "xpud needs privileged (see comment)")

    # the config: mounted where --config reads it, naming the same directories
    cm = by_kind["ConfigMap"][0]
    conf_path = args.get("--config", "")
    conf_mount = [m for m in mounts if under(conf_path, m["mountPath"])]
    check(len(conf_mount) == 1 and volumes[conf_mount[0]["name"]].get("configMap", {}).get("name")
          == cm["metadata"]["name"], "--config is not read from the ConfigMap")
    key = os.path.basename(conf_path)
    check(key in cm["data"], f"the ConfigMap has no {key}")
    conf = yaml.safe_load(cm["data"].get(key, "")) or {}
    for flag in DIR_FLAGS:
        k = flag[2:]
        if k in conf:
            check(conf[k] == args.get(flag), f"the ConfigMap's {k} differs from {flag}")
    xpud = os.environ.get("XPUD_BIN")
    if xpud:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(cm["data"].get(key, ""))
            f.flush()
            r = subprocess.run([xpud, "--check-config", f.name], capture_output=True, text=True)
            check(r.returncode == 0, f"xpud --check-config refuses the ConfigMap: {r.stderr}")

    probe = c.get("livenessProbe", {}).get("exec", {}).get("command", [])
    check(len(probe) > 0 and probe[0].endswith("xpuctl") and probe[-1] == "version"
          and args.get("--socket") in probe, "the liveness probe is not xpuctl version on the socket")
    res = c.get("resources", {})
    check("memory" in res.get("requests", {}) and "memory" in res.get("limits", {}),
          "memory requests and limits are not set")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1])
    for p in problems:
        print(f"{sys.argv[1]}: {p}")
    sys.exit(1 if problems else 0)
