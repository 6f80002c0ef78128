"""The guest side of the channel: one JSON message a line over a virtio-serial port.

Started by vng as the guest's command. Under TCG every fork/exec costs ~100 ms and
`import scapy.all` ~30 s, so this process imports the heavy modules once per boot
(in the background, after announcing itself ready) and serves calls from that warm
state: `call` forks a child of the warm parent, which enters the netns and runs the
function. Commands given as argv run without a shell.
"""

from __future__ import annotations

# Start-up imports are few on purpose: each module costs 50-200 ms under TCG over 9p,
# and boot-to-ready is measured against plain vng. The rest are imported where used.
import json
import os
import sys
import threading
import time

from knit.errors import RemoteError
from knit.guest import ports
from knit.guest.setns import libc, setns

PORT_NAME = ports.CHANNEL
HOST_GONE_S = 10.0
# Only the scapy layers knit uses: `scapy.all` costs ~50 s under TCG over 9p.
# knit.guest.netns pulls in pyroute2's IPRoute, which `import pyroute2` loads lazily.
WARM_MODULES = ("pyroute2", "knit.guest.netns", "scapy.layers.inet", "scapy.layers.inet6",
                "scapy.layers.l2", "scapy.sendrecv", "scapy.utils")

SIGINT, SIGKILL = 2, 9
USER_MARK = "(userspace) "  # knit.health skips kernel-log records marked so


def find_port(name: str = PORT_NAME) -> str:
    """Device node of the virtio-serial port called `name` (no udev needed)."""
    base = "/sys/class/virtio-ports"
    for dev in sorted(os.listdir(base)):
        try:
            with open(f"{base}/{dev}/name") as f:
                if f.read().strip() == name:
                    return f"/dev/{dev}"
        except OSError:
            continue
    raise RuntimeError(f"virtio port {name} not found under {base}")


def ns_entry(ns: str | None):
    """A preexec_fn entering `ns`. libc is loaded here, in the parent: importing in a
    child forked from a threaded process can deadlock on the import lock."""
    if not ns:
        return None
    libc()
    return lambda: setns(ns)


def resolve(target: str) -> object:
    import importlib
    mod, _, func = target.partition(":")
    return getattr(importlib.import_module(mod), func)


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "replace")


class Proc:
    """A background process whose output is collected as it arrives."""

    def __init__(self, argv: list[str] | str, ns: str | None, env: dict | None,
                 cwd: str | None = None) -> None:
        import subprocess
        shell = isinstance(argv, str)
        self.p = subprocess.Popen(
            argv,
            shell=shell,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            preexec_fn=ns_entry(ns), cwd=cwd,
            start_new_session=True,
        )
        self.out = bytearray()
        self.err = bytearray()
        self.cond = threading.Condition()
        self.readers = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self.err), daemon=True),
        ]
        for t in self.readers:
            t.start()

    def _pump(self, stream: object, buf: bytearray) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self.cond:
                buf.extend(chunk)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> dict:
        import re
        rx = re.compile(pattern.encode(), re.M)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if rx.search(self.out) or rx.search(self.err):
                    return {"matched": True, **self.snapshot()}
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._pumping()):
                    return {"matched": False, **self.snapshot()}
                self.cond.wait(min(left, 0.2))

    def _pumping(self) -> bool:
        return any(t.is_alive() for t in self.readers)

    def snapshot(self) -> dict:
        return {"rc": self.p.poll(), "stdout": _decode(self.out), "stderr": _decode(self.err)}

    def stop(self, sig: int, timeout: float) -> dict:
        import subprocess
        timed_out = False
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(self.p.pid, SIGKILL)
                self.p.wait()
        for t in self.readers:
            t.join(2)
        return {**self.snapshot(), "timed_out": timed_out}


class Agent:
    def __init__(self, port: str) -> None:
        self.fd = os.open(port, os.O_RDWR)
        self.wlock = threading.Lock()
        self.warm = threading.Event()
        self.warm_error: str | None = None
        self.procs: dict[int, Proc] = {}
        self.keep = False  # --keep-vm: outlive the host, wait for 'knit attach'
        self.next_handle = 1

    # -- wire ---------------------------------------------------------------
    def send(self, msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with self.wlock:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]

    def lines(self):
        buf = b""
        gone_since = None
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                # read() gives 0 while the host end is not connected. If the host stays
                # away (pytest killed), exit: vng then powers the guest off, so no VM
                # outlives its harness.
                gone_since = gone_since or time.monotonic()
                if not self.keep and time.monotonic() - gone_since > HOST_GONE_S:
                    print("knit agent: host gone, powering off", file=sys.stderr)
                    os._exit(3)
                time.sleep(0.05)
                continue
            gone_since = None
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)

    def serve(self) -> None:
        self.send({"event": "ready", "pid": os.getpid(), "release": os.uname().release,
                   "uptime": uptime(), "proc_start": proc_start_uptime()})
        threading.Thread(target=self._warm_up, daemon=True).start()
        for req in self.lines():
            threading.Thread(target=self._handle, args=(req,), daemon=True).start()

    def _warm_up(self) -> None:
        import importlib
        import site
        t0 = time.monotonic()
        site.main()  # started with -S: add site-packages (scapy, pyroute2) now
        for mod in WARM_MODULES:
            try:
                importlib.import_module(mod)
            except Exception as e:  # a missing optional module must not kill the agent
                self.warm_error = f"{mod}: {e}"
        self.warm.set()
        self.send({"event": "warm", "seconds": round(time.monotonic() - t0, 3),
                   "error": self.warm_error})

    def _handle(self, req: dict) -> None:
        rid = req.get("id")
        try:
            result = getattr(self, "op_" + req["op"])(**req.get("args", {}))
            self.send({"id": rid, "ok": True, "result": result})
        except RemoteError as e:
            self.send({"id": rid, "ok": False, "error": e.args[0], "traceback": e.tb})
        except Exception as e:
            import traceback
            self.send({"id": rid, "ok": False, "error": f"{type(e).__name__}: {e}",
                       "traceback": traceback.format_exc()})

    # -- operations ---------------------------------------------------------
    def op_keep(self) -> dict:
        self.keep = True
        return {"keep": True}

    def op_poweroff(self) -> dict:
        threading.Timer(0.5, lambda: os._exit(0)).start()  # vng powers the guest off
        return {"poweroff": True}

    def op_ping(self) -> dict:
        return {"pid": os.getpid(), "warm": self.warm.is_set()}

    def op_run(self, argv: list[str] | str, ns: str | None = None, timeout: float = 60,
               input: str | None = None, env: dict | None = None,
               cwd: str | None = None) -> dict:
        try:
            return self._run(argv, ns, timeout, input, env, cwd)
        except FileNotFoundError:
            prog = argv if isinstance(argv, str) else argv[0]
            return {"rc": 127, "stdout": "", "timed_out": False,
                    "stderr": f"{prog}: not found in the guest (it shares the host's root: "
                              "install its Debian package on the host)\n"}

    def _run(self, argv: list[str] | str, ns: str | None, timeout: float,
             input: str | None, env: dict | None, cwd: str | None) -> dict:
        import subprocess
        p = subprocess.Popen(
            argv, shell=isinstance(argv, str),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, **env} if env else None,
            preexec_fn=ns_entry(ns), cwd=cwd,
            start_new_session=True,
        )
        try:
            out, err = p.communicate(input.encode() if input is not None else None, timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, SIGKILL)
            out, err = p.communicate()
            timed_out = True
        return {"rc": p.returncode, "stdout": _decode(out), "stderr": _decode(err),
                "timed_out": timed_out}

    def op_call(self, target: str, ns: str | None = None, kwargs: dict | None = None,
                timeout: float = 60) -> object:
        if not self.warm.wait(timeout):
            raise TimeoutError(f"agent not warm after {timeout}s (importing {WARM_MODULES})")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: single-threaded copy of the warm parent
            os.close(r)
            code = 0
            try:
                setns(ns)
                res = {"ok": True, "result": resolve(target)(**(kwargs or {}))}
            except BaseException as e:
                import traceback
                res = {"ok": False, "error": f"{type(e).__name__}: {e}",
                       "traceback": traceback.format_exc()}
            try:
                data = json.dumps(res).encode()
            except TypeError as e:
                data = json.dumps({"ok": False, "error": f"result not JSON: {e}"}).encode()
                code = 1
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
            os._exit(code)
        os.close(w)
        chunks: list[bytes] = []
        reader = threading.Thread(
            target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")), daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            os.kill(pid, SIGKILL)
            os.waitpid(pid, 0)
            reader.join(2)
            os.close(r)
            raise TimeoutError(f"{target} did not return within {timeout}s")
        os.close(r)
        os.waitpid(pid, 0)
        res = json.loads(b"".join(chunks) or b'{"ok": false, "error": "child died"}')
        if not res["ok"]:
            raise RemoteError(res["error"], res.get("traceback", ""))
        return res["result"]

    def op_spawn(self, argv: list[str] | str, ns: str | None = None,
                 env: dict | None = None, cwd: str | None = None) -> dict:
        proc = Proc(argv, ns, env, cwd)
        handle = self.next_handle
        self.next_handle += 1
        self.procs[handle] = proc
        return {"handle": handle, "pid": proc.p.pid}

    def op_wait_for(self, handle: int, pattern: str, timeout: float) -> dict:
        return self.procs[handle].wait_for(pattern, timeout)

    def op_poll(self, handle: int) -> dict:
        return self.procs[handle].snapshot()

    def op_pty(self, argv: list[str], ns: str | None = None, rows: int = 24,
               cols: int = 80, port: str = ports.SHELL) -> dict:
        """An interactive program on a pty, its bytes pumped to and from virtio port `port`.

        The host learns that it ended from a 'pty_exit' event on this channel."""
        import fcntl
        import pty
        import struct
        import termios
        dev = os.open(find_port(port), os.O_RDWR)
        entry = ns_entry(ns)
        pid, master = pty.fork()
        if pid == 0:
            try:
                if entry:
                    entry()
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        threading.Thread(target=self._pump_pty, args=(pid, master, dev), daemon=True).start()
        return {"pid": pid}

    def _pump_pty(self, pid: int, master: int, dev: int) -> None:
        import select
        try:
            while True:
                ready, _, _ = select.select([master, dev], [], [], 0.2)
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the program exited
                        break
                    if not data:
                        break
                    os.write(dev, data)
                if dev in ready:
                    data = os.read(dev, 65536)  # 0 while the host end is away: just wait
                    if data:
                        os.write(master, data)
                    else:
                        time.sleep(0.05)
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(master)
            os.close(dev)
            self.send({"event": "pty_exit", "pid": pid, "status": status})

    def op_kmsg(self, after: int = -1) -> dict:
        return read_kmsg(after)

    def op_state(self) -> dict:
        return {"netns": sorted(os.listdir("/run/netns")), "modules": read_modules(),
                "sysctl": read_sysctls()}

    def op_stop(self, handle: int, sig: int = SIGINT, timeout: float = 10) -> dict:
        return self.procs.pop(handle).stop(sig, timeout)


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def proc_start_uptime() -> float:
    """When this process started, in seconds since boot (field 22 of /proc/self/stat)."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def read_kmsg(after: int) -> dict:
    """Records of /dev/kmsg newer than sequence `after`, read without exec'ing dmesg."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    lines, last = [], after
    try:
        while True:
            try:
                rec = os.read(fd, 8192).decode("utf-8", "replace")
            except BlockingIOError:
                break
            except BrokenPipeError:  # records overwritten while reading: go on
                continue
            head, _, msg = rec.partition(";")
            fields = head.split(",")
            seq = int(fields[1])
            if seq > after:
                ts = int(fields[2]) / 1e6
                # Records that userspace wrote (facility != 0: virtme-ng-init's own
                # "WARNING: failed to run ...") are marked: they are no kernel report.
                mark = USER_MARK if int(fields[0]) >> 3 else ""
                lines.append(f"[{ts:12.6f}] {mark}{msg.splitlines()[0] if msg else ''}")
                last = seq
    finally:
        os.close(fd)
    return {"seq": last, "lines": lines}


def read_modules() -> dict[str, str]:
    """Loaded modules and their taint flags ('O' = out of tree)."""
    mods = {}
    with open("/proc/modules") as f:
        for line in f:
            parts = line.split()
            taint = line[line.find("(") + 1:line.find(")")] if "(" in line else ""
            mods[parts[0]] = taint
    return mods


SYSCTL_DIRS = ("core", "ipv4", "ipv6", "mptcp", "tipc", "netfilter", "unix")
SYSCTL_SKIP = ("/conf/", "/neigh/", "nf_conntrack_count", "/route/", "base_reachable_time")


_sysctl_paths: list[str] = []


def sysctl_paths() -> list[str]:
    """Walked once per boot: listing /proc/sys is the slow part under TCG."""
    if not _sysctl_paths:
        for d in SYSCTL_DIRS:
            for root, _, files in os.walk(f"/proc/sys/net/{d}"):
                for name in files:
                    path = f"{root}/{name}"
                    if any(s in path for s in SYSCTL_SKIP) and "/all/" not in path \
                            and "/default/" not in path:
                        continue
                    _sysctl_paths.append(path)
    return _sysctl_paths


def read_sysctls() -> dict[str, str]:
    """Init-netns net.* sysctls (per-device conf and volatile entries left out).

    Sysctls that a module registers later are not in the list; those come and go
    with the module, which the modules check covers.
    """
    out = {}
    for path in sysctl_paths():
        try:
            with open(path) as f:
                out[path[len("/proc/sys/"):].replace("/", ".")] = f.read().strip()
        except OSError:
            continue
    return out


def initmounts(cmdline: str) -> list[tuple[int, str, bool]]:
    """vng's shared folders from the kernel command line: (index, guest path, writable)."""
    found: dict[int, list] = {}
    for word in cmdline.split():
        key, _, value = word.partition("=")
        if key.startswith("virtme_initmount"):
            idx, _, attr = key[len("virtme_initmount"):].partition("_")
            if idx.isdigit():
                entry = found.setdefault(int(idx), [int(idx), "", False])
                if not attr:
                    entry[1] = value
                elif attr == "access":
                    entry[2] = value == "rw"
    return sorted(tuple(e) for e in found.values() if e[1])


def shadowed(mounts: list[tuple[int, str, bool]]) -> list[tuple[str, str]]:
    """(writable folder, the later read-only mount that covers it): vng mounts every
    --rwdir before every --rodir, so artifacts inside the read-only checkout are hidden."""
    out = []
    for i, path, rw in mounts:
        covers = [other for j, other, _ in mounts
                  if j > i and path.startswith(other.rstrip("/") + "/")]
        if rw and covers:
            out.append((path, max(covers, key=len)))
    return out


def uncover_writable() -> None:
    """Move each covering mount aside, take the writable one out from under it, put the
    cover back and the writable one on top (MS_MOVE keeps both mounts as they are)."""
    try:
        with open("/proc/cmdline") as f:
            pairs = shadowed(initmounts(f.read()))
    except OSError:
        return
    ms_move = 8192
    for n, (rw, cover) in enumerate(pairs):
        t_cover, t_rw = f"/run/knit-mnt/{n}c", f"/run/knit-mnt/{n}w"
        os.makedirs(t_cover, exist_ok=True)
        os.makedirs(t_rw, exist_ok=True)
        for src, dst in ((cover, t_cover), (rw, t_rw), (t_cover, cover), (t_rw, rw)):
            if libc().mount(src.encode(), dst.encode(), None, ms_move, None) != 0:
                import ctypes
                err = os.strerror(ctypes.get_errno())
                print(f"knit agent: cannot uncover {rw} (move {src} to {dst}: {err})",
                      file=sys.stderr)
                break
    if pairs:
        os.chdir(os.getcwd())  # the cwd's mount moved: look the path up again


def main() -> None:
    os.makedirs("/run/netns", exist_ok=True)
    uncover_writable()
    Agent(find_port(sys.argv[1] if len(sys.argv) > 1 else PORT_NAME)).serve()


if __name__ == "__main__":
    main()
