"""Guest side: a scratch cgroup v2 and a private bpffs for bpf/mptcpify (`knit mptcpify`
runs there as a user would run it on a host), and their removal. Stdlib only.

    state = vm.call("suites.mptcp.lib.cgroup:scratch")   # {"cgroup", "pin", "bpffs", ...}
    vm.call("suites.mptcp.lib.cgroup:remove", state=state)
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
import time

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
# The argv prefix that runs a command inside a cgroup: the shell moves itself into the
# cgroup, then execs the command (whose sockets are then created in that cgroup).
IN_CGROUP = ["sh", "-c", 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', "sh"]


def _mount(source: str, target: str, fstype: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount -t {fstype} {target}: {os.strerror(e)}")


def _cgroup2_root() -> str | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, where, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return where
    return None


def scratch(name: str = "knit-mptcpify") -> dict:
    """A fresh cgroup v2 directory (mounting cgroup2 if the guest has none), a private
    bpffs, and a directory in it to pin under; also a directory for renamed commands."""
    st: dict = {"bpffs": tempfile.mkdtemp(prefix="knit-bpffs-"), "cg_mounted": None,
                "bin": tempfile.mkdtemp(prefix="knit-bin-")}
    _mount("bpf", st["bpffs"], "bpf")
    root = _cgroup2_root()
    if root is None:
        root = st["cg_mounted"] = tempfile.mkdtemp(prefix="knit-cgroup2-")
        _mount("cgroup2", root, "cgroup2")
    st["cgroup"] = os.path.join(root, f"{name}-{os.getpid()}")
    os.mkdir(st["cgroup"])
    st["pin"] = os.path.join(st["bpffs"], name)
    return st


def alias(state: dict, program: str, name: str) -> str:
    """A symlink `name` to `program`: exec'd through it, the program's comm is `name`."""
    path = os.path.join(state["bin"], name)
    os.symlink(shutil.which(program) or program, path)
    return path


def _rmdir(path: str, tries: int = 50) -> None:
    # A process that was in the cgroup may still be exiting: rmdir says EBUSY.
    for _ in range(tries):
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.1)
    os.rmdir(path)


def remove(state: dict) -> None:
    """Undo scratch(): the pins (a pinned link gone detaches its program), the mounts,
    the cgroup."""
    _libc.umount2(state["bpffs"].encode(), MNT_DETACH)   # drops every pin in it
    os.rmdir(state["bpffs"])
    shutil.rmtree(state["bin"], ignore_errors=True)
    if os.path.isdir(state["cgroup"]):
        _rmdir(state["cgroup"])
    if state["cg_mounted"]:
        _libc.umount2(state["cg_mounted"].encode(), MNT_DETACH)
        os.rmdir(state["cg_mounted"])
