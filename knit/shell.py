"""`knit shell`: an interactive shell in a knit VM, with a topology already built.

The shell runs on a pty in the guest; its bytes cross a second virtio-serial port
(knit.1) and this module bridges them to the local terminal in raw mode.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import select
import shutil
import socket
import sys
import termios
import tty
from pathlib import Path

from knit.errors import KnitError
from knit.paths import ROOT
from knit.topology import Topology
from knit.vm import VM


def load_topology(spec: str) -> Topology:
    """'suites/mptcp:NAME' (the suite's topologies.py), 'FILE.py:NAME' or
    'package.module:NAME'; NAME is a Topology or a function returning one."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise KnitError(f"bad --topology '{spec}': use suites/SUITE:NAME, FILE.py:NAME or "
                        "package.module:NAME")
    if Path(where).is_dir():
        where = str(Path(where) / "topologies.py")
    if where.endswith(".py"):
        # A suite's topologies.py imports its helpers as suites.<suite>.lib.*.
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        path = Path(where)
        if not path.exists():
            raise KnitError(f"--topology file {path} not found")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module(where)
    obj = getattr(mod, name, None)
    if obj is None:
        known = ", ".join(getattr(mod, "__all__", []))
        raise KnitError(f"--topology: {where} has no '{name}'"
                        + (f"; it has {known}" if known else ""))
    topo = obj() if callable(obj) and not isinstance(obj, Topology) else obj
    if not isinstance(topo, Topology):
        raise KnitError(f"--topology: {spec} is not a knit.topology.Topology")
    return topo.validate()


def interactive(vm: VM, ns: str | None = None, argv: list[str] | None = None) -> int:
    """Bridge the local terminal to a shell in the guest until the shell exits."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(vm.shell_sock))
    cols, rows = shutil.get_terminal_size()
    prompt = f"knit:{vm.cfg.kernel.name}{':' + ns if ns else ''}# "
    argv = argv or ["env", f"PS1={prompt}", f"TERM={os.environ.get('TERM', 'vt100')}",
                    "bash", "--norc", "-i"]
    pid = vm.request("pty", vm.scaled(10), argv=argv, ns=ns, rows=rows, cols=cols)["pid"]
    fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(fd_in) if os.isatty(fd_in) else None
    if saved:
        tty.setraw(fd_in)
    try:
        while vm.chan.find_event("pty_exit", pid=pid) is None and vm.alive:
            ready, _, _ = select.select([fd_in, sock], [], [], 0.2)
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                os.write(fd_out, data)
            if fd_in in ready:
                data = os.read(fd_in, 4096)
                if not data:
                    break
                sock.sendall(data)
    finally:
        if saved:
            termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)
        sock.close()
    ev = vm.chan.find_event("pty_exit", pid=pid)
    return os.waitstatus_to_exitcode(ev["status"]) if ev else 1
