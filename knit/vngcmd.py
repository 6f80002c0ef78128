"""The one place that turns a typed VM spec into a vng command line."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from knit.guest import ports


@dataclass(frozen=True)
class WireNic:
    """A virtio-net NIC whose frames go out as datagrams to `remote` and come in on
    `local` (QEMU >= 7.2 `-netdev dgram`): two VMs' NICs with swapped paths are one
    wire, started in either order, on no host network at all."""

    mac: str
    local: Path
    remote: Path


@dataclass(frozen=True)
class VngSpec:
    image: Path                  # vmlinuz next to its lib/modules, or a build tree
    command: list[str]           # argv run in the guest as root
    accel: str = "tcg"           # "kvm" or "tcg"
    cpus: int = 2
    memory: str = "1G"
    rwdirs: tuple[Path, ...] = ()
    root: Path | None = None     # a guest root tree (knit rootfs); None: the host's /
    rodirs: tuple[tuple[Path, Path], ...] = ()   # (guest path, host path), read-only
    chardev_socket: Path | None = None   # knit's virtio-serial channel
    port_name: str = ports.CHANNEL
    shell_socket: Path | None = None     # raw bytes of an interactive shell (knit shell)
    cwd: Path | None = None
    append: tuple[str, ...] = ()
    gdb_port: int | None = None
    verbose: bool = True         # the serial console goes to vng's stdout (our console log)
    # Under TCG every console character is slow: keep warnings, oopses and panics (< 5)
    # and drop the boot chatter.
    console_loglevel: int | None = 5
    # KNIT_TCG_THREAD=multi: faster boots on a quiet host, at the risk above.
    tcg_thread: str = field(default_factory=lambda: os.environ.get("KNIT_TCG_THREAD", "single"))
    extra_qemu: tuple[str, ...] = field(default=())
    nics: tuple[WireNic, ...] = ()


def build(spec: VngSpec) -> list[str]:
    argv = ["vng", *(["--verbose"] if spec.verbose else []), "--run", str(spec.image),
            "--force-9p", "--user", "root", "--cpus", str(spec.cpus), "--memory", spec.memory]
    if spec.accel == "tcg":
        argv.append("--disable-kvm")
    if spec.root is not None:
        argv += ["--root", str(spec.root)]
    for guest, host in spec.rodirs:
        argv.append(f"--rodir={guest}={host}")
    for d in spec.rwdirs:
        argv.append(f"--rwdir={d}={d}" if spec.root is not None else f"--rwdir={d}")
    if spec.cwd:
        argv += ["--cwd", str(spec.cwd)]
    appends = list(spec.append)
    if spec.verbose and spec.console_loglevel is not None:
        appends.append(f"loglevel={spec.console_loglevel}")
    if spec.gdb_port:
        appends.append("nokaslr")  # so vmlinux's symbols match the running kernel
    for a in appends:
        argv.append(f"--append={a}")
    qemu = list(spec.extra_qemu)
    if spec.accel == "tcg" and spec.tcg_thread == "single":
        # Multi-threaded TCG raced with the kernel's int3 text patching under host load
        # ("Oops: int3" in run_timer_softirq at boot, seen in CI). One TCG thread runs all
        # vCPUs, so patching is coherent; it boots ~15% slower on a quiet host (measured).
        qemu += ["-accel", "tcg,thread=single"]
    if spec.accel == "tcg":
        # vng's TCG CPU is "max", which has LA57: a KASAN kernel then splats at boot now and
        # then (wild-memory-access in an IRQ during identify_cpu, a false positive; see
        # kernels/known-issues.toml). Most hardware has no LA57; qemu keeps the last -cpu.
        qemu += ["-cpu", "max,la57=off"]
    if spec.chardev_socket:
        qemu += ["-chardev", f"socket,id=knit0,path={spec.chardev_socket},server=on,wait=off",
                 "-device", f"virtserialport,chardev=knit0,name={spec.port_name}"]
    if spec.shell_socket:
        qemu += ["-chardev", f"socket,id=knit1,path={spec.shell_socket},server=on,wait=off",
                 "-device", f"virtserialport,chardev=knit1,name={ports.SHELL}"]
    if spec.gdb_port:
        qemu += ["-gdb", f"tcp:127.0.0.1:{spec.gdb_port}"]
    for i, nic in enumerate(spec.nics):
        for p in (nic.local, nic.remote):
            if "," in str(p) or len(str(p)) > 107:  # qemu's option syntax, AF_UNIX's limit
                raise ValueError(f"wire socket path {p} has a comma or exceeds 107 bytes")
        qemu += ["-netdev", f"dgram,id=kw{i},local.type=unix,local.path={nic.local},"
                            f"remote.type=unix,remote.path={nic.remote}",
                 "-device", f"virtio-net-pci,netdev=kw{i},mac={nic.mac}"]
    if qemu:
        # argparse would read a value starting with '-' as an option: use the = form.
        argv.append("--qemu-opts=" + shlex.join(qemu))
    argv += ["--", shlex.join(spec.command)]
    return argv
