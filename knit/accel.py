"""Pick KVM or TCG once per host: a tiny KVM boot, cached.

/dev/kvm can exist while nested KVM is broken ("failed to set MSR 0x10a", "KVM internal
error"), so the device's presence proves nothing: boot the kernel under KVM with no root
until it panics, and trust KVM only if it got that far.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from knit.kernels import cache_dir

PROBE_TIMEOUT = 60.0
REACHED = (b"Kernel panic", b"VFS: Unable to mount root", b"Run /init")


def _host_key() -> str:
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.split("\n")[0]
    return f"{os.uname().release}|{qemu}"


def probe_kvm(kernel_image: Path) -> tuple[bool, str]:
    """Boot `kernel_image` under KVM without a root fs; True if the kernel ran."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not writable"
    argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-machine", "q35",
            "-m", "256", "-smp", "1", "-nographic", "-no-reboot", "-nodefaults",
            "-serial", "stdio", "-kernel", str(kernel_image),
            "-append", "console=ttyS0 panic=-1 loglevel=4"]
    try:
        p = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + (e.stderr or b"")
    if any(m in out for m in REACHED):
        return True, "kvm boot reached the kernel"
    last = out.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return False, f"kvm probe failed: {last[0][:160]}"


def cached() -> str | None:
    """The accelerator chosen before on this host (KNIT_ACCEL, or the probe's cache)."""
    forced = os.environ.get("KNIT_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    try:
        saved = json.loads((cache_dir() / "accel.json").read_text())
    except (OSError, ValueError):
        return None
    return saved["accel"] if saved.get("key") == _host_key() else None


def choose(kernel_image: Path) -> str:
    """'kvm' or 'tcg'. KNIT_ACCEL overrides; otherwise probe once and cache per host."""
    forced = os.environ.get("KNIT_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    cache = cache_dir() / "accel.json"
    key = _host_key()
    try:
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["accel"]
    except (OSError, ValueError):
        pass
    ok, why = probe_kvm(kernel_image)
    accel = "kvm" if ok else "tcg"
    if not ok:
        print(f"knit: warning: KVM unusable ({why}); using TCG emulation, timeouts scaled",
              file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": accel, "why": why}) + "\n")
    return accel
