"""Forged MPTCP segments against a live, idle connection held in the guest.

Three parts:
  * the holder, a guest process (``python -S -m suites.mptcp.lib.forge hold ...``, run with
    vm.spawn in the client's netns): an MPTCP client there, its server a thread in the
    server's netns, both ends kept open and idle between requests. It captures the
    handshake (a packet socket opened before connect()) and prints it with its first line;
    requests come over an abstract unix socket of the client's netns: `exchange` (data
    both ways, checked), `wait_server` (until the server's recv() ends: a reset, EOF);
  * guest functions for vm.call in the client's netns: `ask` (one request), and
    `fastclose`, which has the holder exchange a little data, reads the connection's
    sequence numbers off the wire from it, and sends a pure ACK carrying MP_FASTCLOSE
    with a given key towards the server, as if from the client (scapy builds it);
  * the host side: `held()`, a context manager yielding a `Held`.

Forged segments carry no timestamp: the topology must turn net.ipv4.tcp_timestamps off,
or the receiver's PAWS check drops them.

The holder starts as a fresh guest process (slow under TCG over 9p): this module imports
only the standard library at the top; scapy and the wire decoder are imported where used.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knit.vm import VM

IPPROTO_MPTCP = 262
ETH_P_ALL = 0x0003
TCPOPT_MPTCP, MP_FASTCLOSE = 30, 0x7
LEN = struct.Struct("!I")
HANDSHAKE_PACKETS = 8  # SYN, SYN-ACK, the MP_CAPABLE ACK and the first data, with room
LIMIT_S = 30.0  # the holder's socket waits, before vm.scaled(); a request's answer +10


# -- wire helpers (stdlib: the holder has no scapy) -------------------------------------

@dataclass(frozen=True)
class Seg:
    """The fields of one IPv4 TCP segment that forging needs."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: int

    @property
    def end(self) -> int:
        """Sequence number after this segment (SYN and FIN count one)."""
        return (self.seq + self.payload + (self.flags & 0x01) + ((self.flags >> 1) & 1)) \
            & 0xFFFFFFFF


def parse_seg(pkt: bytes) -> Seg | None:
    """An IPv4 TCP segment from the packet's bytes (IP header first), else None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_TCP:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    sport, dport, seq, ack, off_flags, window = struct.unpack_from("!HHIIHH", pkt, ihl)
    doff = (off_flags >> 12) * 4
    return Seg(socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20]), sport, dport,
               seq, ack, off_flags & 0x3F, window, max(0, total - ihl - doff))


def fastclose_option(key: int) -> bytes:
    """The value (after kind and length) of an MP_FASTCLOSE option carrying `key`."""
    return bytes([MP_FASTCLOSE << 4, 0]) + key.to_bytes(8, "big")


def _after(a: int, b: int) -> bool:
    """TCP's after(a, b) in 32-bit sequence space."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


def sniffer() -> socket.socket:
    """A packet socket on every interface of this netns, both directions, IP header first."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


def drain(sk: socket.socket, port: int) -> list[bytes]:
    """The IPv4 TCP packets to or from `port` queued on packet socket `sk` so far."""
    out = []
    while True:
        try:
            pkt = sk.recv(65535, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return out
        seg = parse_seg(pkt)
        if seg and port in (seg.sport, seg.dport):
            out.append(pkt)


# -- the holder (guest process) ---------------------------------------------------------

def _recv_exact(sk: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sk.recv(n - len(buf))
        if not chunk:
            raise EOFError("EOF")
        buf += chunk
    return bytes(buf)


def _errname(e: BaseException) -> str:
    code = getattr(e, "errno", None)
    return errno.errorcode.get(code, str(code)) if code else f"{type(e).__name__}: {e}"


class Echo(threading.Thread):
    """The server end: in netns `ns`, accepts one MPTCP connection, then echoes each
    length-prefixed message until recv() fails; `ended` says how (ECONNRESET, EOF)."""

    def __init__(self, ns: str, port: int, limit: float) -> None:
        super().__init__(daemon=True)
        self.ns, self.port, self.limit = ns, port, limit
        self.ready = threading.Event()
        self.ended: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        from knit.guest.setns import setns
        try:
            setns(self.ns)
            lsk = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
            lsk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsk.bind(("0.0.0.0", self.port))
            lsk.listen(1)
            lsk.settimeout(self.limit)
        except OSError as e:
            self.error = f"server setup: {e}"
            self.ready.set()
            return
        self.ready.set()
        try:
            with lsk, lsk.accept()[0] as conn:
                conn.settimeout(None)  # idle for as long as the test takes
                while True:
                    n = LEN.unpack(_recv_exact(conn, LEN.size))[0]
                    conn.sendall(_recv_exact(conn, n))
        except EOFError:
            self.ended = "EOF"
        except OSError as e:
            self.ended = _errname(e)


class Holder:
    """The client end and the request loop (in the client's netns)."""

    def __init__(self, connect: str, port: int, server_ns: str, limit: float) -> None:
        self.connect, self.port, self.limit = connect, port, limit
        self.server = Echo(server_ns, port, limit)
        self.exchanges = 0

    def start(self) -> dict[str, Any]:
        cap = sniffer()  # before connect(): the handshake carries the keys
        self.server.start()
        self.server.ready.wait(self.limit)
        if self.server.error:
            raise RuntimeError(self.server.error)
        self.sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        self.sk.settimeout(self.limit)
        self.sk.connect((self.connect, self.port))
        first = self.exchange(1024)  # the MP_CAPABLE ACK with data: both keys
        packets = drain(cap, self.port)[:HANDSHAKE_PACKETS]
        cap.close()
        return {"ready": True, "local": list(self.sk.getsockname()), "first": first,
                "handshake": [p.hex() for p in packets]}

    def exchange(self, size: int) -> dict[str, Any]:
        """`size` random bytes to the server and back; ok when the echo matches. Gives up
        at once when the server's end is gone: an MPTCP client whose only subflow was
        reset keeps waiting (the kernel does not pass a subflow's error up)."""
        data = os.urandom(size)
        deadline = time.monotonic() + self.limit
        back = bytearray()
        try:
            self.sk.settimeout(self.limit)
            self.sk.sendall(LEN.pack(size) + data)
            self.sk.settimeout(0.2)
            while len(back) < size:
                try:
                    chunk = self.sk.recv(size - len(back))
                except TimeoutError:
                    if self.server.ended:
                        return {"ok": False, "error": "no echo: the server's end is gone",
                                **self.status()}
                    if time.monotonic() > deadline:
                        return {"ok": False, "error": "timeout", **self.status()}
                    continue
                if not chunk:
                    raise EOFError("EOF")
                back += chunk
        except EOFError:
            return {"ok": False, "error": "EOF"}
        except OSError as e:
            return {"ok": False, "error": _errname(e)}
        self.exchanges += 1
        ok = hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
        return {"ok": ok, "error": None if ok else "echo differs", "size": size}

    def status(self) -> dict[str, Any]:
        return {"server_ended": self.server.ended, "exchanges": self.exchanges}

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["op"] == "exchange":
            return self.exchange(int(req["size"]))
        if req["op"] == "wait_server":
            self.server.join(float(req["timeout"]))
            return self.status()
        if req["op"] == "status":
            return self.status()
        return {"error": f"unknown op {req['op']!r}"}

    def serve(self, name: str) -> None:
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.bind("\0" + name)
        ctl.listen(4)
        print(json.dumps(self.start()), flush=True)
        while True:
            conn, _ = ctl.accept()
            with conn, conn.makefile("rw") as f:
                f.write(json.dumps(self.handle(json.loads(f.readline()))) + "\n")
                f.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m suites.mptcp.lib.forge")
    ap.add_argument("role", choices=["hold"])
    ap.add_argument("--connect", required=True)
    ap.add_argument("--port", type=int, default=10000)
    ap.add_argument("--server-ns", required=True)
    ap.add_argument("--ctl", required=True, help="abstract unix socket name for requests")
    ap.add_argument("--limit", type=float, default=60.0, help="timeout of each socket wait")
    a = ap.parse_args(argv)
    try:
        Holder(a.connect, a.port, a.server_ns, a.limit).serve(a.ctl)
    except KeyboardInterrupt:  # vm.spawn stops it with SIGINT
        return 0
    return 0


# -- guest functions for vm.call ---------------------------------------------------------

def ask(ctl: str, req: dict[str, Any], wait: float = 60.0) -> dict[str, Any]:
    """One request to the holder listening on abstract socket `ctl` (this netns), its
    answer awaited for `wait` s."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(wait)
        s.connect("\0" + ctl)
        with s.makefile("rw") as f:
            f.write(json.dumps(req) + "\n")
            f.flush()
            return json.loads(f.readline())


def fastclose(ctl: str, key: int, connect: str, port: int = 10000,
              wait: float = 60.0) -> dict[str, Any]:
    """Send the server a pure ACK carrying MP_FASTCLOSE with `key`, as from the client.

    Its sequence numbers come off the wire: the holder exchanges a little data while a
    packet socket listens; once the echo is back, every byte each side sent was received,
    so the client's next sequence number is the server's rcv_nxt and the server's next one
    its snd_nxt: an in-window seq and an acceptable ack. The window is the client's last.
    """
    from scapy.layers.inet import IP, TCP

    cap = sniffer()
    try:
        echo = ask(ctl, {"op": "exchange", "size": 1024}, wait)
        segs = [s for s in map(parse_seg, drain(cap, port)) if s]
    finally:
        cap.close()
    if not echo["ok"]:
        raise RuntimeError(f"the exchange before forging failed: {echo}")
    up = [s for s in segs if s.dst == connect and s.dport == port]
    down = [s for s in segs if s.src == connect and s.sport == port]
    if not up or not down:
        raise RuntimeError(f"no segments seen: {len(up)} up, {len(down)} down")
    seq, ack = up[0].end, down[0].end
    for s in up:
        seq = s.end if _after(s.end, seq) else seq
    for s in down:
        ack = s.end if _after(s.end, ack) else ack
    last = up[-1]
    pkt = IP(src=last.src, dst=last.dst) / TCP(
        sport=last.sport, dport=last.dport, flags="A", seq=seq, ack=ack, window=last.window,
        options=[(TCPOPT_MPTCP, fastclose_option(key))])
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(bytes(pkt), (last.dst, 0))
    return {"src": last.src, "dst": last.dst, "sport": last.sport, "dport": last.dport,
            "seq": seq, "ack": ack, "window": last.window, "key": key, "seen": len(segs)}


# -- host side ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Keys:
    """The MPTCP keys of a connection, from its MP_CAPABLE handshake on the wire."""

    client: int
    server: int


def handshake_keys(packets: list[bytes]) -> Keys:
    """v1: the SYN-ACK carries the server's key, the client's MP_CAPABLE ACK both."""
    from scapy.layers.inet import IP

    from suites.mptcp.lib.wire import MpCapable, options_of

    synack = ack = None
    for raw in packets:
        for opt in options_of(IP(raw)):
            if isinstance(opt, MpCapable) and opt.variant == "synack":
                synack = opt
            elif isinstance(opt, MpCapable) and opt.variant in ("ack", "ack_data"):
                ack = ack or opt
    if synack is None or ack is None or synack.sender_key is None or ack.sender_key is None:
        raise AssertionError(f"no MP_CAPABLE SYN-ACK and ACK with keys among {len(packets)} "
                             "packets of the handshake")
    if ack.receiver_key != synack.sender_key:
        raise AssertionError(f"the ACK echoes key {ack.receiver_key:#x}, the SYN-ACK "
                             f"gave {synack.sender_key:#x}")
    return Keys(client=ack.sender_key, server=synack.sender_key)


class Held:
    """A connection held open and idle in the guest (see the module doc)."""

    def __init__(self, vm: VM, ns: str, ctl: str, connect: str, port: int,
                 ready: dict[str, Any]) -> None:
        self.vm, self.ns, self.ctl, self.connect, self.port = vm, ns, ctl, connect, port
        self.ready = ready
        self.keys = handshake_keys([bytes.fromhex(h) for h in ready["handshake"]])

    def _ask(self, req: dict[str, Any], wait: float = 0.0) -> dict[str, Any]:
        wait += self.vm.scaled(LIMIT_S + 10)  # the holder's own waits end first
        return self.vm.call(ask, ns=self.ns, ctl=self.ctl, req=req, wait=wait,
                            timeout=wait + self.vm.scaled(10))

    def exchange(self, size: int = 16 << 10) -> dict[str, Any]:
        """`size` bytes to the server and echoed back: {"ok", "error"}."""
        return self._ask({"op": "exchange", "size": size})

    def status(self) -> dict[str, Any]:
        """{"server_ended": None while the server's recv() waits, else how it ended}."""
        return self._ask({"op": "status"})

    def wait_server_ended(self, timeout: float) -> dict[str, Any]:
        """status() once the server's recv() ended, or after `timeout` s."""
        return self._ask({"op": "wait_server", "timeout": timeout}, wait=timeout)

    def fastclose(self, key: int) -> dict[str, Any]:
        """A forged pure ACK with MP_FASTCLOSE(`key`) to the server, from the client's
        address and port; returns what was sent (seq, ack, key...)."""
        wait = self.vm.scaled(LIMIT_S + 10)
        return self.vm.call(fastclose, ns=self.ns, ctl=self.ctl, key=key, wait=wait,
                            connect=self.connect, port=self.port,
                            timeout=wait + self.vm.scaled(10))


@contextmanager
def held(vm: VM, client: str = "ns1", server: str = "ns2", connect: str = "10.0.1.2",
         port: int = 10000) -> Iterator[Held]:
    """An MPTCP connection from `client` to `connect` in `server`, idle between requests,
    its handshake captured; stopped (SIGINT) on exit."""
    ctl = f"knit-forge-{port}"
    argv = [vm.python, "-S", "-m", "suites.mptcp.lib.forge", "hold", "--connect", connect,
            "--port", str(port), "--server-ns", server, "--ctl", ctl,
            "--limit", str(vm.scaled(LIMIT_S))]
    with vm.spawn(argv, ns=client, ready=r'^\{"ready"', ready_timeout=vm.scaled(60)) as sp:
        line = next(ln for ln in sp.output().stdout.splitlines() if ln.startswith('{"ready"'))
        yield Held(vm, client, ctl, connect, port, json.loads(line))


if __name__ == "__main__":
    sys.exit(main())
