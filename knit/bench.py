"""`knit bench`: boot-to-ready against plain vng, and warm round trips, in one run."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from knit import accel, kernels, rootfs, vngcmd
from knit.errors import KnitError
from knit.vm import VM, VMConfig

# vng's exit codes when it booted the guest and ran the command: 255 whatever the command
# did when its script channel is missing (no udev in the shared root, or stdin not a
# terminal; seen for `true` and for `sh -c 'exit 3'` alike on 2026-12-02), else the
# command's own. Any other code is vng's own failure. A 255 does not say the command ran.
VNG_RAN = (0, 255)
PLAIN_VNG_S = 600


def plain_vng_boot(k: kernels.Kernel, accel_name: str, env: dict, workdir: Path) -> float:
    """Wall time of `vng -- true` as a user types it: what booting a VM per command costs.
    The command is `touch` of a file in a --rwdir instead: vng's exit code cannot say the
    guest ran it (VNG_RAN), the file can."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="plain-vng-") as tmp:
        mark = Path(tmp).resolve() / "ran"
        spec = vngcmd.VngSpec(image=k.image, command=["touch", str(mark)], accel=accel_name,
                              rwdirs=(mark.parent,), verbose=False)
        t0 = time.monotonic()
        try:
            p = subprocess.run(vngcmd.build(spec), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=env, timeout=PLAIN_VNG_S)
        except subprocess.TimeoutExpired:
            raise KnitError(f"plain vng -- true still running after {PLAIN_VNG_S}s") from None
        took = time.monotonic() - t0
        if p.returncode not in VNG_RAN or not mark.exists():
            last = (p.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1][:200]
            raise KnitError(f"plain vng did not run its command (exit {p.returncode}, "
                            f"{mark.name} not written): {last}")
    return took


def knit_boot(k: kernels.Kernel, accel_name: str, workdir: Path,
              us: rootfs.Userspace) -> VM:
    vm = VM(VMConfig(kernel=k, accel=accel_name, workdir=workdir, userspace=us,
                     rodirs=(kernels.cache_dir(),), rwdirs=(workdir.resolve().parent,)))
    vm.boot(retries=0)
    return vm


def host_root_boot(k: kernels.Kernel, accel_name: str, workdir: Path) -> tuple[float, float]:
    """knit's boot-to-ready and warm-up on the host's own / (the pre-rootfs way)."""
    vm = knit_boot(k, accel_name, workdir, rootfs.HOST)
    try:
        return vm.boot_s or 0.0, vm.wait_warm()["seconds"]
    finally:
        vm.stop()


def run(kernel: str, rounds: int = 2, calls: int = 30, log=print,
        userspace: str = rootfs.DEFAULT) -> dict:
    k = kernels.ensure(kernel)
    us = rootfs.get(userspace)
    acc = accel.choose(k.image)
    env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    plain, boots, host_boots, host_warm = [], [], [], []
    workdir = Path("artifacts") / "bench"  # console logs stay for a failed boot
    workdir.mkdir(parents=True, exist_ok=True)
    vm = None
    for i in range(rounds):  # interleaved, so drift hits both sides alike
        plain.append(plain_vng_boot(k, acc, env, workdir))
        log(f"round {i + 1}: plain vng -- true {plain[-1]:.1f}s")
        if vm:
            vm.stop()
        b, w = host_root_boot(k, acc, workdir)
        host_boots.append(b)
        host_warm.append(w)
        log(f"round {i + 1}: knit on the host's / boot-to-ready {b:.1f}s, warm {w:.1f}s")
        vm = knit_boot(k, acc, workdir, us)
        boots.append(vm.boot_s)
        agent_s = vm.ready["uptime"] - vm.ready["proc_start"]
        log(f"round {i + 1}: knit on {us.name} boot-to-ready {boots[-1]:.1f}s (guest uptime "
            f"{vm.ready['uptime']:.1f}s, agent start-up {agent_s:.1f}s of it)")
    warm = vm.wait_warm()
    log(f"agent warm (scapy, pyroute2 imported) after {warm['seconds']}s more")
    vm.run(["true"])
    rts = []
    for _ in range(calls):
        t0 = time.monotonic()
        vm.run(["true"])
        rts.append(time.monotonic() - t0)
    call_rts = []
    for _ in range(calls // 3):
        t0 = time.monotonic()
        vm.call("os:getpid")
        call_rts.append(time.monotonic() - t0)
    vm.stop()
    boot_s, plain_s = statistics.median(boots), statistics.median(plain)
    rt_ms = statistics.median(rts) * 1000
    return {
        "kernel": kernel, "version": k.version, "accel": acc, "userspace": us.name,
        "boot_s": round(boot_s, 2), "plain_vng_boot_s": round(plain_s, 2),
        "boot_ratio": round(boot_s / plain_s, 3),
        "host_root_boot_s": round(statistics.median(host_boots), 2),
        "rootfs_vs_host_root_boot_ratio": round(boot_s / statistics.median(host_boots), 3),
        "host_root_warm_import_s": round(statistics.median(host_warm), 2),
        "roundtrip_ms": round(rt_ms, 1),
        "roundtrip_speedup": round(plain_s * 1000 / rt_ms, 1),
        "call_roundtrip_ms": round(statistics.median(call_rts) * 1000, 1),
        "warm_import_s": warm["seconds"],
        "rounds": rounds, "calls": calls,
    }
