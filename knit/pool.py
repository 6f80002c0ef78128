"""One warm VM per kernel for this process (an xdist worker): booted lazily, replaced
when dirty. Scheduling lives here; VM lifecycle lives in knit.vm."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from knit import accel, health, kernels, rootfs
from knit.errors import BootError, KnitError
from knit.kernels import Kernel
from knit.vm import VM, VMConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gdb_hint(vm: VM) -> str:
    k, port = vm.cfg.kernel, vm.cfg.gdb_port
    target = f"gdb -ex 'target remote 127.0.0.1:{port}'"
    built = k.image / "vmlinux" if k.image.is_dir() else None
    if built is not None and built.exists():  # a build tree: its own vmlinux has symbols
        return f"gdb stub of {k.name} at 127.0.0.1:{port}: {target} {built}"
    return (f"gdb stub of {k.name} at 127.0.0.1:{port}: "
            f"{target} /usr/lib/debug/boot/vmlinux-{k.version}"
            f"  (symbols: apt-get download linux-image-{k.version}-dbg && dpkg-deb -x it /)")


def key(kernel: str, userspace: str) -> str:
    """The pool's name for one (kernel, userspace) VM."""
    return f"{kernel}@{userspace}"


class VMPool:
    def __init__(self, workdir: Path, rwdirs: tuple[Path, ...], accel_name: str | None = None,
                 cpus: int = 2, memory: str = "1G", gdb: bool = False,
                 boot_log: Path | None = None, rodirs: tuple[Path, ...] = ()) -> None:
        self.workdir = workdir
        self.rodirs = rodirs
        self.userspaces: dict[str, rootfs.Userspace] = {}
        self.boot_log = boot_log  # one JSON line per boot, shared by the xdist workers
        self.rwdirs = rwdirs
        self.accel_name = accel_name
        self.cpus, self.memory, self.gdb = cpus, memory, gdb
        self.kernels: dict[str, Kernel] = {}
        self.vms: dict[str, VM] = {}
        self.broken: dict[str, BootError] = {}
        self.kmsg_seq: dict[str, int] = {}
        self.baseline: dict[str, dict] = {}
        # Faults logged while a VM booted and warmed up, until its first test takes them.
        self.boot_faults: dict[str, list[health.Fault]] = {}
        # Faults logged after the last test's check, found when the VMs stop.
        self.final_faults: list[tuple[str, health.Fault]] = []

    def kernel(self, name: str) -> Kernel:
        if name not in self.kernels:
            self.kernels[name] = kernels.ensure(name)
        return self.kernels[name]

    def accel(self, k: Kernel) -> str:
        if self.accel_name is None:
            self.accel_name = accel.choose(k.image if k.image.is_file() else
                                           k.image / "arch/x86/boot/bzImage")
        return self.accel_name

    def userspace(self, name: str) -> rootfs.Userspace:
        if name not in self.userspaces:
            self.userspaces[name] = rootfs.get(name)
        return self.userspaces[name]

    def get(self, kernel: str, userspace: str = rootfs.DEFAULT) -> VM:
        """The warm VM for `kernel` on `userspace`, booting or replacing it as needed."""
        name = key(kernel, userspace)
        if name in self.broken:
            raise self.broken[name]
        vm = self.vms.get(name)
        if vm is not None and not vm.alive:
            reason = vm.dirty or "qemu exited"
            print(f"knit: replacing VM for {name}: {reason}", file=sys.stderr)
            vm.stop()
            vm = None
        if vm is None:
            k = self.kernel(kernel)
            vm = VM(VMConfig(kernel=k, accel=self.accel(k), workdir=self.workdir,
                             rwdirs=self.rwdirs, rodirs=self.rodirs,
                             userspace=self.userspace(userspace), cpus=self.cpus,
                             memory=self.memory,
                             gdb_port=free_port() if self.gdb else None))
            try:
                vm.boot()
            except BootError as e:
                self.broken[name] = e  # two boots failed: don't spend more on this kernel
                raise
            if self.boot_log is not None:
                entry = {"kernel": kernel, "userspace": userspace,
                         "boot_s": round(vm.boot_s or 0, 2),
                         "accel": vm.cfg.accel, "when": time.time()}
                with self.boot_log.open("a") as f:  # one short append: whole lines
                    f.write(json.dumps(entry) + "\n")
            self.vms[name] = vm
            if vm.cfg.gdb_port:
                # Straight to the terminal: pytest captures fixture output.
                print(f"\nknit: {gdb_hint(vm)}", file=sys.__stderr__)
            # Hand out a warm VM: a first test racing the agent's imports under TCG took
            # 110-210 s where later ones took 10-80 s, and could hit its own timeouts.
            vm.wait_warm()
            self.kmsg_seq[name], boot_log = vm.kmsg()
            self.boot_faults[name] = health.scan(boot_log)
            self.baseline[name] = vm.state()
        return vm

    def close(self) -> None:
        """Stop every VM; a clean one's log is read a last time first (`final_faults`)."""
        for name, vm in self.vms.items():
            if vm.alive and not vm.dirty and not vm.kept:
                try:
                    _, lines = vm.kmsg(self.kmsg_seq.get(name, -1))
                    self.final_faults += [(name, f) for f in health.scan(lines)]
                except KnitError as e:
                    print(f"knit: final kernel-log read of {name} failed: {e}", file=sys.stderr)
            vm.stop()
        self.vms.clear()
