"""One virtme-ng VM: boot, run, call, spawn, kmsg, stop. Knows nothing of pytest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knit import rootfs, vngcmd
from knit.channel import Channel
from knit.chroot import ChrootError
from knit.errors import BootError, ChannelError, CmdFailed, KnitError
from knit.kernels import Kernel
from knit.paths import ROOT

TCG_SCALE = 5.0
BOOT_TIMEOUT = {"kvm": 60.0, "tcg": 240.0}
WARM_TIMEOUT = {"kvm": 60.0, "tcg": 300.0}


@dataclass
class Result:
    rc: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out


@dataclass
class VMConfig:
    kernel: Kernel
    accel: str
    workdir: Path                      # console log and channel socket live here
    rwdirs: tuple[Path, ...] = ()      # host folders the guest may write (artifacts)
    rodirs: tuple[Path, ...] = ()      # host folders it may read (knit's cache), same path
    userspace: rootfs.Userspace = rootfs.HOST
    cpus: int = 2
    memory: str = "1G"
    python: str = field(default_factory=lambda: sys.executable)
    gdb_port: int | None = None
    nics: tuple[vngcmd.WireNic, ...] = ()   # wires to a peer VM (knit.pool)


_precompiled: set[str] = set()
GUEST_CODE = ("knit", "fixtures", "suites")   # what the guest imports from the checkout


def precompile(us: rootfs.Userspace) -> None:
    """Byte-compile the checkout's guest-side code on the host, once per process, for the
    guest's python. The guest reads it over 9p and must not write .pyc files; compiling
    from source under TCG costs seconds of every boot (a PYTHONPYCACHEPREFIX on the
    artifacts mount doubled the warm-up: 26 s against 12.7 s)."""
    if us.name in _precompiled:
        return
    dirs = [ROOT / d for d in GUEST_CODE if (ROOT / d).is_dir()]
    if us.root is None:
        import compileall
        for d in dirs:
            compileall.compile_dir(d, quiet=2, workers=1)
    else:
        # The tree's python (3.13 in trixie) writes its own cpython-3XX.pyc beside the
        # host's. Inside a chroot (no private mounts) it cannot: the guest then compiles
        # in memory at each boot, slower but the same code.
        try:
            us.run([us.python, "-m", "compileall", "-q", "-j0", *map(str, dirs)],
                   rw=(ROOT,), timeout=600)
        except ChrootError:
            pass
    _precompiled.add(us.name)


def guest_mounts(cfg: VMConfig) -> tuple[tuple[Path, Path], ...]:
    """(guest, host) read-only mounts of a root-tree guest: the checkout, knit's cache
    and the kernel's modules. Mount points are made in the tree (empty folders)."""
    root = cfg.userspace.root
    if root is None:
        return ()
    mounts = [(p, p) for p in (ROOT, *cfg.rodirs)]
    k = cfg.kernel
    mods = k.modules
    if mods is None and k.image.is_dir():
        mods = k.image / ".virtme_mods" / "lib" / "modules" / "0.0.0"
    if mods is not None and mods.is_dir():
        base = Path("/usr/lib/modules") if (root / "lib").is_symlink() else Path("/lib/modules")
        mounts.append((base / k.version, mods.resolve()))
    for guest, _ in (*mounts, *((d, d) for d in cfg.rwdirs)):
        (root / str(guest).lstrip("/")).mkdir(parents=True, exist_ok=True)
    return tuple(mounts)


def call_target(target: str | Callable[..., Any]) -> str:
    """"package.module:function" for the agent. A function object gives its own name, so
    a call follows the function when it moves; it must be a module-level function that the
    guest imports by the same module name (not a lambda, method or __main__'s)."""
    if isinstance(target, str):
        return target
    mod, name = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    if not mod or mod == "__main__" or not name.isidentifier():
        raise ValueError(f"vm.call: {target!r} is not a module-level function the guest "
                         "can import; pass it as 'package.module:function'")
    return f"{mod}:{name}"


def console_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


class VM:
    """A warm VM with knit's agent as its init command.

    After a channel error (timeout, panic, qemu gone) the VM is `dirty` and must be replaced;
    its console log stays on disk for the report.
    """

    def __init__(self, cfg: VMConfig) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None
        self.chan: Channel | None = None
        self.dirty: str | None = None
        self.boot_s: float | None = None
        self.ready: dict = {}
        self.boot_id = uuid.uuid4().hex[:8]
        # AF_UNIX paths are limited to 108 bytes: keep the socket in a short temp dir.
        self._sockdir = Path(tempfile.mkdtemp(prefix="knit-"))
        self.kept = False
        # Out-of-tree modules a suite loads for the VM's whole life on purpose (a tipc.ko
        # from --tipc-ko replaces the stock one): not a test's leftover.
        self.resident_modules: set[str] = set()
        self.sock = self._sockdir / "chan.sock"
        self.shell_sock = self._sockdir / "shell.sock"
        self.console = cfg.workdir / f"console-{self.boot_id}.log"

    # -- properties ---------------------------------------------------------------------
    @property
    def scale(self) -> float:
        return TCG_SCALE if self.cfg.accel == "tcg" else 1.0

    @property
    def python(self) -> str:
        """The guest's python3 (the userspace's, or the host venv's on the host's /)."""
        us = self.cfg.userspace
        return self.cfg.python if us.root is None else us.python

    def scaled(self, seconds: float) -> float:
        """A timeout scaled for the accelerator (TCG is several times slower)."""
        return seconds * self.scale

    # The old name, kept for code written against it (other branches, captures); new code
    # says vm.scaled().
    t = scaled

    @property
    def alive(self) -> bool:
        if self.kept and self.proc is None:  # attached: we did not start it
            return not self.dirty and not (self.chan and self.chan.closed)
        return self.proc is not None and self.proc.poll() is None and not self.dirty

    def console_tail(self, lines: int = 40) -> str:
        return console_tail(self.console, lines)

    def qemu_pid(self) -> int | None:
        """The qemu process of this VM: the one whose command line names our socket."""
        needle = str(self.sock).encode()
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    cmd = (d / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"qemu-system" in cmd.split(b"\0")[0] and needle in cmd:
                    return int(d.name)
        return None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The whole guest frozen (qemu SIGSTOPped, as a hung host would) for the block, then
        resumed: what its peers see of a machine that stops answering."""
        pid = self.qemu_pid()
        if pid is None:
            raise KnitError(f"no qemu found for {self.cfg.kernel.name}: cannot pause it")
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    # -- lifecycle ----------------------------------------------------------------------
    def vng_argv(self) -> list[str]:
        # -S: no site at start-up (its .pth files cost seconds under TCG over 9p); the
        # agent adds site-packages itself while it warms up.
        us = self.cfg.userspace
        python = self.cfg.python if us.root is None else us.python
        # vng's --cwd must lie inside --root on the host: a root tree's guest changes
        # into the checkout (mounted at the same path) itself.
        cd = ["-C", str(ROOT)] if us.root is not None else []
        # Python >= 3.12 warns at every fork of the threaded agent; forking a warm parent
        # is the agent's design (see knit/guest/agent.py), so the warning is noise in the console.
        agent = ["env", *cd, f"PYTHONPATH={ROOT}", "PYTHONDONTWRITEBYTECODE=1",
                 "PYTHONWARNINGS=ignore::DeprecationWarning",
                 python, "-S", "-m", "knit.guest.agent"]
        rw = self.cfg.rwdirs if us.root is not None else (*self.cfg.rwdirs, *self.cfg.rodirs)
        spec = vngcmd.VngSpec(image=self.cfg.kernel.image, command=agent, accel=self.cfg.accel,
                              cpus=self.cfg.cpus, memory=self.cfg.memory, root=us.root,
                              rodirs=guest_mounts(self.cfg),
                              rwdirs=rw, chardev_socket=self.sock,
                              shell_socket=self.shell_sock,
                              cwd=ROOT if us.root is None else None,
                              gdb_port=self.cfg.gdb_port, nics=self.cfg.nics)
        return vngcmd.build(spec)

    def boot(self, retries: int = 1) -> VM:
        for attempt in range(retries + 1):
            try:
                self._boot_once()
                return self
            except BootError:
                self.stop()
                if attempt == retries:
                    raise
                self.dirty = None
                self.boot_id = uuid.uuid4().hex[:8]
                self.console = self.cfg.workdir / f"console-{self.boot_id}.log"
        raise AssertionError("unreachable")

    def _boot_once(self) -> None:
        self.cfg.workdir.mkdir(parents=True, exist_ok=True)
        self._sockdir.mkdir(exist_ok=True)  # stop() after a failed attempt removed it
        precompile(self.cfg.userspace)
        if self.sock.exists():
            self.sock.unlink()
        venv_bin = str(Path(self.cfg.python).parent)
        env = {**os.environ, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
        if shutil.which("vng", path=env["PATH"]) is None:
            raise BootError("vng not found on PATH: install virtme-ng (pip install virtme-ng)")
        t0 = time.monotonic()
        with open(self.console, "wb") as log:
            self.proc = subprocess.Popen(self.vng_argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                         start_new_session=True)
        deadline = t0 + BOOT_TIMEOUT[self.cfg.accel]
        try:
            self.chan = Channel.connect(str(self.sock), deadline, lambda: self.proc.poll() is None)
            self.ready = self.chan.wait_event("ready", max(1.0, deadline - time.monotonic()))
        except ChannelError as e:
            rc = self.proc.poll()
            cause = f"vng exited {rc}" if rc is not None else str(e)
            self.dirty = cause
            raise BootError(f"{self.cfg.kernel.name} did not reach the agent: {cause}; "
                            f"console: {self.console}", self.console_tail()) from e
        self.boot_s = time.monotonic() - t0

    def wait_warm(self) -> dict:
        """Block until the agent has imported scapy and pyroute2 (once per boot)."""
        return self._guard(lambda: self.chan.wait_event("warm", WARM_TIMEOUT[self.cfg.accel]))

    def keep(self) -> str:
        """Leave the VM running after this process exits; returns how to attach."""
        self.request("keep", self.scaled(10))
        self.kept = True
        meta = {"kernel": self.cfg.kernel.name, "version": self.cfg.kernel.version,
                "userspace": self.cfg.userspace.name,
                "image": str(self.cfg.kernel.image), "accel": self.cfg.accel,
                "console": str(self.console), "qemu_pid": self.qemu_pid()}
        (self._sockdir / "vm.json").write_text(json.dumps(meta) + "\n")
        return f"knit attach {self._sockdir}"

    @classmethod
    def attach(cls, sockdir: Path, cfg: VMConfig) -> VM:
        """Connect to a VM left running with keep()."""
        vm = cls(cfg)
        shutil.rmtree(vm._sockdir, ignore_errors=True)
        vm._sockdir, vm.sock, vm.shell_sock = sockdir, sockdir / "chan.sock", sockdir / "shell.sock"
        vm.kept = True
        vm.chan = Channel.connect(str(vm.sock), time.monotonic() + 10, lambda: True)
        vm.ready = vm.request("ping", 10)
        return vm

    def stop(self) -> None:
        if self.kept:
            if self.chan:
                self.chan.close("detached; the VM keeps running")
            return
        if self.chan:
            self.chan.close()
        qemu = self.qemu_pid() if self.proc else None
        if self.proc and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                    os.killpg(self.proc.pid, signal.SIGCONT)  # a stopped qemu must see it
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if qemu is not None and self.qemu_pid() == qemu:
            # vng can exit before its qemu (a stopped qemu keeps SIGTERM pending): a qemu
            # left behind would hold its memory until the host reboots.
            with suppress(ProcessLookupError):
                os.kill(qemu, signal.SIGKILL)
        shutil.rmtree(self._sockdir, ignore_errors=True)

    # -- the channel --------------------------------------------------------------------
    def _guard(self, fn: Any) -> Any:
        if self.dirty:
            raise ChannelError(f"VM is unusable: {self.dirty}")
        try:
            return fn()
        except ChannelError as e:
            gone = self.proc is not None and self.proc.poll() is not None
            self.dirty = f"{e} (qemu {'exited' if gone else 'still running'})"
            raise

    def request(self, op: str, wait: float, **args: Any) -> Any:
        # The host waits a little longer than the guest-side deadline, so that a slow
        # command is reported as its own timeout and not as a dead channel.
        return self._guard(lambda: self.chan.request(op, wait + self.scaled(10), **args))

    def run(self, cmd: list[str] | str, ns: str | None = None, timeout: float | None = None,
            check: bool = True, input: str | None = None, env: dict | None = None,
            cwd: str | None = None) -> Result:
        """Run argv (no shell) or a shell string in the guest, in netns `ns`."""
        timeout = timeout if timeout is not None else self.scaled(30)
        extra = {"cwd": cwd} if cwd else {}  # only when set: older agents lack it
        r = Result(**self.request("run", timeout, argv=cmd, ns=ns, timeout=timeout,
                                  input=input, env=env, **extra))
        if check and not r.ok:
            raise CmdFailed(cmd, r.rc if not r.timed_out else f"timeout after {timeout}s",
                            r.stdout, r.stderr, ns)
        return r

    def call(self, target: str | Callable[..., Any], ns: str | None = None,
             timeout: float | None = None, **kwargs: Any) -> Any:
        """Run python `target(**kwargs)` in the guest, in netns `ns`. `target` is a
        module-level function of the checkout, or its "package.module:function" name."""
        timeout = timeout if timeout is not None else self.scaled(60)
        return self.request("call", timeout, target=call_target(target), ns=ns,
                            kwargs=kwargs, timeout=timeout)

    @contextmanager
    def spawn(self, cmd: list[str] | str, ns: str | None = None, ready: str | None = None,
              ready_timeout: float | None = None, stop_signal: int = signal.SIGINT,
              stop_timeout: float | None = None, env: dict | None = None,
              cwd: str | None = None) -> Iterator[Spawned]:
        """A background guest process: wait for `ready` (a regex on its output), stop it
        with `stop_signal` on exit, and leave its output in the yielded object."""
        extra = {"cwd": cwd} if cwd else {}
        h = self.request("spawn", self.scaled(10), argv=cmd, ns=ns, env=env, **extra)
        sp = Spawned(self, h["handle"], h["pid"], cmd)
        try:
            if ready:
                sp.wait_for(ready, ready_timeout if ready_timeout is not None else self.scaled(30))
            yield sp
        finally:
            if not self.dirty:
                sp.stop(stop_signal, stop_timeout if stop_timeout is not None else self.scaled(10))

    def kmsg(self, after: int = -1) -> tuple[int, list[str]]:
        """Kernel log records with sequence number > `after`, and the last sequence."""
        r = self.request("kmsg", self.scaled(10), after=after)
        return r["seq"], r["lines"]

    def state(self) -> dict:
        """What the leftovers check compares: netns, modules, init-netns net sysctls."""
        return self.request("state", self.scaled(20))


class Spawned:
    def __init__(self, vm: VM, handle: int, pid: int, cmd: list[str] | str) -> None:
        self.vm, self.handle, self.pid, self.cmd = vm, handle, pid, cmd
        self.result: Result | None = None

    def wait_for(self, pattern: str, timeout: float) -> str:
        r = self.vm.request("wait_for", timeout, handle=self.handle, pattern=pattern,
                            timeout=timeout)
        if not r["matched"]:
            state = "exited " + str(r["rc"]) if r["rc"] is not None else "still running"
            raise CmdFailed(self.cmd, f"no line matching {pattern!r} within {timeout:.0f}s "
                            f"({state})", r["stdout"], r["stderr"])
        return r["stdout"]

    def output(self) -> Result:
        r = self.vm.request("poll", self.vm.scaled(10), handle=self.handle)
        return Result(r["rc"], r["stdout"], r["stderr"])

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> Result:
        if self.result is None:
            r = self.vm.request("stop", timeout, handle=self.handle, sig=int(sig), timeout=timeout)
            self.result = Result(r["rc"], r["stdout"], r["stderr"], r["timed_out"])
        return self.result
