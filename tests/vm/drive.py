#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Host side of the VM test: packs the guest's initramfs, boots QEMU, answers the guest's
"@@HOST plug|unplug" requests through QMP, and turns the guest's "@@RESULT" line into the exit
status. Usage:
  drive.py initramfs STAGING_DIR OUT.cpio
  drive.py boot KERNEL INITRD QMP_SOCKET TIMEOUT_S
"""
import json
import os
import socket
import stat
import subprocess
import sys
import time


def cpio_entry(out, name, mode, data=b"", rdev=(0, 0), ino=[1]):
    ino[0] += 1
    hdr = "070701" + "".join("%08X" % v for v in (
        ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0))
    out.write(hdr.encode() + name.encode() + b"\0")
    out.write(b"\0" * (-(110 + len(name) + 1) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def initramfs(staging, path):
    """A newc archive of STAGING owned by root, plus /dev/console: no mknod, no root needed."""
    with open(path, "wb") as out:
        for top, dirs, files in os.walk(staging):
            dirs.sort()
            for n in sorted(dirs) + sorted(files):
                full = os.path.join(top, n)
                rel = os.path.relpath(full, staging)
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    cpio_entry(out, rel, st.st_mode, os.readlink(full).encode())
                elif stat.S_ISDIR(st.st_mode):
                    cpio_entry(out, rel, st.st_mode)
                else:
                    with open(full, "rb") as f:
                        cpio_entry(out, rel, st.st_mode, f.read())
        cpio_entry(out, "dev", stat.S_IFDIR | 0o755)
        cpio_entry(out, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        cpio_entry(out, "TRAILER!!!", 0)


class Qmp:
    def __init__(self, path, deadline):
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.s.makefile("rw")
        self.f.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "return" in msg or "error" in msg:
                return msg


def boot(kernel, initrd, qmp_path, timeout):
    deadline = time.time() + timeout
    qemu = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "512",
            "-smp", "2", "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 loglevel=4 panic=-1 oops=panic rdinit=/init",
            "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1",
            "-device", "edu,id=edu0,bus=rp1",
            # DRM devices for the libdrm lister: bochs binds the standard VGA, virtio_gpu this
            "-vga", "std", "-device", "virtio-gpu-pci,bus=pcie.0",
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path]
    print("+ " + " ".join(qemu), flush=True)
    p = subprocess.Popen(["timeout", "--kill-after=5", str(int(timeout))] + qemu,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    qmp = Qmp(qmp_path, deadline)
    result = None
    failed = []
    for raw in p.stdout:
        line = raw.decode(errors="replace").rstrip("\r\n")
        print(line, flush=True)
        if line.startswith("CHECK FAIL"):
            failed.append(line[len("CHECK FAIL "):])
        line = line.lstrip()
        if line.startswith("@@HOST unplug"):
            r = qmp.cmd("device_del", id="edu0")
            print("  [host] device_del: %s" % json.dumps(r), flush=True)
        elif line.startswith("@@HOST plug"):
            r = qmp.cmd("device_add", driver="edu", id="edu0", bus="rp1")
            print("  [host] device_add: %s" % json.dumps(r), flush=True)
        elif line.startswith("@@RESULT"):
            result = dict(kv.split("=") for kv in line.split()[1:])
    rc = p.wait()
    if rc in (124, 137):
        print("VM test: timed out after %ds" % timeout)
        return 1
    if result is None:
        print("VM test: the guest ended without a result (crash or panic?)")
        return 1
    for f in failed:
        print("VM test: FAILED: " + f)
    print("VM test: %s passed, %s failed" % (result["pass"], result["fail"]))
    return 0 if result["fail"] == "0" and int(result["pass"]) > 0 else 1


if __name__ == "__main__":
    if sys.argv[1] == "initramfs":
        initramfs(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "boot":
        sys.exit(boot(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
    else:
        sys.exit(2)
