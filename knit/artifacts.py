"""Artifacts of a failed test: one folder with the kernel's and each node's view."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from knit.errors import KnitError
from knit.vm import VM

NODE_COMMANDS = {
    "nstat.txt": ["nstat", "-asz"],        # -s: do not touch nstat's history file
    "ss.txt": ["ss", "-tanpie"],
    "ip-addr.json": ["ip", "-d", "-j", "addr"],
}


def test_dir(root: Path, nodeid: str) -> Path:
    return root / re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", nodeid).strip("_")


def fresh_test_dir(root: Path, nodeid: str, failed_attempts: int = 0) -> Path:
    """An empty folder for this attempt of the test. After a failed attempt (a flake
    retry) that attempt's files move to attempt-N/ instead of being deleted: they are
    the only record of why it failed."""
    d = test_dir(root, nodeid)
    if failed_attempts and d.is_dir():
        keep = d / f"attempt-{failed_attempts}"
        keep.mkdir(exist_ok=True)
        for p in list(d.iterdir()):
            if not p.name.startswith("attempt-"):
                p.rename(keep / p.name)
        return d
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def collect(vm: VM | None, dest: Path, nodes: list[str], reason: str) -> Path:
    """Write what a person debugging the failure would ask for first. Never raises."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "reason.txt").write_text(reason + "\n")
    if vm is None:
        return dest
    (dest / "console-tail.txt").write_text(vm.console_tail(200) + "\n")
    meta = {"kernel": vm.cfg.kernel.name, "version": vm.cfg.kernel.version,
            "accel": vm.cfg.accel, "console": str(vm.console), "vm_dirty": vm.dirty}
    (dest / "vm.json").write_text(json.dumps(meta, indent=1) + "\n")
    if vm.dirty:
        return dest
    try:
        (dest / "dmesg.txt").write_text(vm.run(["dmesg"], check=False).stdout)
        for node in [None, *nodes]:
            sub = dest / (node or "root")
            sub.mkdir(exist_ok=True)
            for name, argv in NODE_COMMANDS.items():
                r = vm.run(argv, ns=node, check=False)
                (sub / name).write_text(r.stdout + r.stderr)
    except KnitError as e:
        (dest / "collect-error.txt").write_text(f"{e}\n")
    return dest
