"""One warm VM per kernel for this process (an xdist worker): booted lazily, replaced
when dirty. Scheduling lives here; VM lifecycle lives in knit.vm."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from knit import accel, health, kernels, rootfs
from knit.errors import BootError, KnitError
from knit.guest import wires
from knit.kernels import Kernel
from knit.vm import VM, VMConfig
from knit.vngcmd import WireNic


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


def peer_key(a_key: str) -> str:
    """The pool's name for the peer VM (role b) wired to VM `a_key`."""
    return f"peer-of-{a_key}"


def wire_nics(role: str, wire_dir: Path) -> tuple[WireNic, ...]:
    """The NICs of one VM of a pair: wire i is <dir>/a<i> <-> <dir>/b<i>."""
    other = "b" if role == "a" else "a"
    return tuple(WireNic(wires.mac(role, i), wire_dir / f"{role}{i}", wire_dir / f"{other}{i}")
                 for i in range(wires.COUNT))


class VMPool:
    def __init__(self, workdir: Path, rwdirs: tuple[Path, ...], accel_name: str | None = None,
                 cpus: int = 2, memory: str = "1G", gdb: bool = False,
                 boot_log: Path | None = None, rodirs: tuple[Path, ...] = (),
                 wired: bool = False, session: str | None = None) -> None:
        self.workdir = workdir
        # Wired: every VM gets the NICs of a pair's VM a, so a test's own VM is also the
        # first half of its pair and only the peer boots for a multi_vm test.
        self.wired = wired
        self.wire_dirs: dict[str, Path] = {}
        self.peers: dict[str, str] = {}   # a_key -> the peer's kernel@userspace
        self.rodirs = rodirs
        self.userspaces: dict[str, rootfs.Userspace] = {}
        self.boot_log = boot_log  # one JSON line per boot, shared by the xdist workers
        self.session = session    # written on each line: whose boot it was
        self.rwdirs = rwdirs
        self.accel_name = accel_name
        self.cpus, self.memory, self.gdb = cpus, memory, gdb
        self.kernels: dict[str, Kernel] = {}
        self.vms: dict[str, VM] = {}
        self.broken: dict[str, BootError] = {}
        self.broken_as: dict[str, str] = {}  # what a broken name was booted as
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

    def wire_dir(self, a_key: str) -> Path:
        """The sockets of VM a_key's wires: short (AF_UNIX), kept across reboots of either
        VM, so that a replaced VM rejoins the same wires."""
        if a_key not in self.wire_dirs:
            self.wire_dirs[a_key] = Path(tempfile.mkdtemp(prefix="knit-w-"))
        return self.wire_dirs[a_key]

    def get(self, kernel: str, userspace: str = rootfs.DEFAULT) -> VM:
        """The warm VM for `kernel` on `userspace`, booting or replacing it as needed."""
        name = key(kernel, userspace)
        nics = wire_nics("a", self.wire_dir(name)) if self.wired else ()
        return self._get(name, kernel, userspace, nics)

    def peer(self, a_key: str, kernel: str, userspace: str = rootfs.DEFAULT) -> VM:
        """The peer (VM b) of VM `a_key`, on `kernel`: booted on first use and kept warm;
        a peer on another kernel is stopped first (both would bind the same sockets)."""
        name = peer_key(a_key)
        want = key(kernel, userspace)
        if self.peers.get(a_key) not in (None, want) and name in self.vms:
            self.vms.pop(name).stop()
        self.peers[a_key] = want
        if self.broken.get(name) is not None and self.broken_as.get(name) != want:
            del self.broken[name]
        vm = self._get(name, kernel, userspace, wire_nics("b", self.wire_dir(a_key)))
        return vm

    def _get(self, name: str, kernel: str, userspace: str,
             nics: tuple[WireNic, ...]) -> VM:
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
                             gdb_port=free_port() if self.gdb else None, nics=nics))
            try:
                vm.boot()
            except BootError as e:
                self.broken[name] = e  # two boots failed: don't spend more on this kernel
                self.broken_as[name] = key(kernel, userspace)
                raise
            if self.boot_log is not None:
                entry = {"kernel": kernel, "userspace": userspace,
                         "boot_s": round(vm.boot_s or 0, 2),
                         "accel": vm.cfg.accel, "when": time.time(),
                         **({"role": "peer"} if name.startswith("peer-of-") else {}),
                         **({"session": self.session} if self.session else {})}
                with self.boot_log.open("a") as f:  # one short append: whole lines
                    f.write(json.dumps(entry) + "\n")
            self.vms[name] = vm
            if vm.cfg.gdb_port:
                # Straight to the terminal: pytest captures fixture output.
                print(f"\nknit: {gdb_hint(vm)}", file=sys.__stderr__)
            # Hand out a warm VM: a first test racing the agent's imports under TCG took
            # 110-210 s where later ones took 10-80 s, and could hit its own timeouts.
            vm.wait_warm()
            if nics:
                self._check_wires(vm, nics)
            self.kmsg_seq[name], boot_log = vm.kmsg()
            self.boot_faults[name] = health.scan(boot_log)
            self.baseline[name] = vm.state()
        return vm

    def _check_wires(self, vm: VM, nics: tuple[WireNic, ...]) -> None:
        """Every wire NIC is there, down, under its parking name, before the baseline."""
        found = vm.call("knit.guest.netns:park_all", want=len(nics), wait=vm.scaled(6))
        missing = [n.mac for n in nics if n.mac not in found.values()]
        if missing:
            vm.stop()
            raise BootError(f"{vm.cfg.kernel.name}: wire NICs {', '.join(missing)} missing "
                            f"in the guest (CONFIG_VIRTIO_NET?); console: {vm.console}",
                            vm.console_tail())

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
        for d in self.wire_dirs.values():
            shutil.rmtree(d, ignore_errors=True)
