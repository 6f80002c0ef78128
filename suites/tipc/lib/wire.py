"""Guest side: a TIPC node's eth bearer seen on the wire (AF_PACKET), for vm.call.

Counting a link's probes here, not in `tipc link stat`: the counters are zeroed when the
link resets (tipc_link_reset -> tipc_link_reset_stats), and the wire also shows the last
packet the link heard from its peer, from which the kernel counts (see
suites.tipc.lib.parsers.silent_link_probes). Frames are returned raw and decoded on the
host by suites.tipc.lib.parsers.parse_capture.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import time

from suites.tipc.lib.parsers import ETH_P_TIPC, parse_capture
from suites.tipc.lib.sock import (
    TIPC_LINK_STATE,
    TIPC_SUB_PORTS,
    TIPC_WAIT_FOREVER,
    Subscription,
    read_event,
    topsrv_connect,
)

ETH_P_ALL = 0x0003          # outgoing frames reach only ETH_P_ALL taps
SO_TIMESTAMPNS = 35         # linux/asm-generic/socket.h; not in Python's socket module
TIMESPEC = struct.Struct("=qq")


def _tap(dev: str) -> socket.socket:
    # Protocol 0 until bind: a socket opened with ETH_P_ALL taps every device at once
    # (a first capture held a node-internal frame, traced on lo, from before the bind).
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((dev, ETH_P_ALL))
    return s


def _read(s: socket.socket) -> dict | None:
    """One TIPC frame from the tap: kernel timestamp (CLOCK_REALTIME), pkttype, bytes;
    None for another protocol's frame."""
    data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(TIMESPEC.size))
    if int.from_bytes(data[12:14], "big") != ETH_P_TIPC:   # (ifname, proto, pkttype, ...)
        return None
    sec, nsec = next(TIMESPEC.unpack(d[:TIMESPEC.size]) for lvl, typ, d in anc
                     if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS)
    return {"t": sec + nsec / 1e9, "pkttype": addr[2], "hex": data.hex()}


def capture_until_lost(peer: int, dev: str, cut_ns: str, cut: list[str],
                       wait: float) -> dict:
    """Tap `dev` of this node, wait until its link to `peer` delivers a frame to us (the
    capture then holds a reception to count from), run `cut` (argv) in netns `cut_ns`,
    and keep capturing until the topology service withdraws the link (TIPC_LINK_STATE)
    or `wait` s pass. Times are s after the cut began (CLOCK_REALTIME, as the frames'
    kernel timestamps); "event" is None when no withdrawal came. Raises TimeoutError if
    nothing came from `peer` before the cut."""
    from knit.guest.setns import setns

    sub = Subscription(TIPC_LINK_STATE, peer, peer, TIPC_WAIT_FOREVER, TIPC_SUB_PORTS, b"knit")
    frames: list[dict] = []
    with topsrv_connect(sub, timeout=wait) as top, _tap(dev) as tap:
        up = read_event(top)
        deadline = time.monotonic() + wait
        while not frames or not parse_capture(frames[-1:])[0].heard_from(peer):
            if not select.select([tap], [], [], max(0, deadline - time.monotonic()))[0]:
                raise TimeoutError(f"no frame from node {peer:#x} on {dev} in {wait} s")
            if f := _read(tap):
                frames.append(f)
        cut_at = time.time()
        subprocess.run(cut, check=True, capture_output=True, timeout=wait,
                       preexec_fn=lambda: setns(cut_ns))
        cut_end = time.time()
        down = None
        deadline = time.monotonic() + wait
        while down is None and (left := deadline - time.monotonic()) > 0:
            ready = select.select([tap, top], [], [], left)[0]
            if tap in ready and (f := _read(tap)):
                frames.append(f)
            if top in ready:
                down = read_event(top)
        lost_at = time.time()
        tap.setblocking(False)
        while True:                 # frames queued before the withdrawal was read
            try:
                if f := _read(tap):
                    frames.append(f)
            except BlockingIOError:
                break
    for f in frames:
        f["t"] = round(f["t"] - cut_at, 6)
    return {"up": up.to_json(), "event": down.to_json() if down else None,
            "cut_end": round(cut_end - cut_at, 6), "lost": round(lost_at - cut_at, 6),
            "frames": frames}
