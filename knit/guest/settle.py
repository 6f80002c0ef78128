"""Guest side of the health check's settle step: let the kernel finish what a test started
before its log is read, so a late report goes to the test that caused it.

Three waits, each bounded: dead network namespaces dismantled (a canary netns whose veth
peer in the init netns goes away only when cleanup_net reaches it: the netns workqueue is
ordered, so earlier namespaces are done by then), the kernel log quiet for a while, and on
kernels with kmemleak, two scans (as NIPA does: the first one can miss fresh objects).
Runs in a forked child of the agent (vm.call).
"""

from __future__ import annotations

import os
import select
import time

from pyroute2 import IPRoute

from knit.guest.netns import create_netns, destroy
from knit.guest.setns import libc

CANARY = "knit-settle"
CANARY_IF = "knit-settle0"
KMEMLEAK = "/sys/kernel/debug/kmemleak"
KMEMLEAK_MIN_AGE_S = 5.2  # mm/kmemleak.c MSECS_MIN_AGE, and a margin


def netns_dismantled(limit: float) -> float:
    """Seconds until namespaces deleted before this call were dismantled (or `limit`)."""
    t0 = time.monotonic()
    create_netns(CANARY)
    with IPRoute() as ipr:
        ipr.link("add", ifname=CANARY_IF, kind="veth",
                 peer={"ifname": "eth0", "net_ns_fd": CANARY})
    destroy([CANARY])
    while os.path.exists(f"/sys/class/net/{CANARY_IF}") and time.monotonic() - t0 < limit:
        time.sleep(0.02)
    return time.monotonic() - t0


def log_quiet(window: float, elapsed: float, after: int, limit: float) -> float:
    """Wait until /dev/kmsg has had no record for `window` s. `elapsed`: how long it has
    been since the test ended; records after sequence `after` that are already there
    arrived at an unknown time, so then the window starts now."""
    t0 = time.monotonic()
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        last = t0 - elapsed
        while True:
            try:
                head = os.read(fd, 8192).split(b";", 1)[0].split(b",")
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten while reading: go on
                continue
            if int(head[1]) > after:
                last = t0
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while (now := time.monotonic()) - last < window and now - t0 < limit:
            wait = min(window - (now - last), limit - (now - t0))
            if poller.poll(max(1, int(wait * 1000))):
                try:
                    while os.read(fd, 8192):
                        last = time.monotonic()
                except (BlockingIOError, BrokenPipeError):
                    pass
    finally:
        os.close(fd)
    return time.monotonic() - t0


def kmemleak_reports(since_test: float) -> list[str] | None:
    """Scan twice and return the report lines (then cleared, so each leak is reported
    once); None on a kernel without kmemleak. `since_test`: seconds since the test ended;
    kmemleak ignores objects younger than 5 s, so a leak of the test's last moment is
    waited for here rather than blamed on the next test."""
    if not os.path.ismount("/sys/kernel/debug"):
        libc().mount(b"debugfs", b"/sys/kernel/debug", b"debugfs", 0, None)
    if not os.path.exists(KMEMLEAK):
        return None
    time.sleep(max(0.0, KMEMLEAK_MIN_AGE_S - since_test))
    for _ in range(2):
        with open(KMEMLEAK, "w") as f:
            f.write("scan")
    with open(KMEMLEAK) as f:
        lines = f.read().splitlines()
    if lines:
        with open(KMEMLEAK, "w") as f:
            f.write("clear")
    return lines


def settle(window: float, elapsed: float, after: int, limit: float,
           kmemleak: bool = True) -> dict:
    """All three waits; what each took, and the kmemleak report lines (if any)."""
    t0 = time.monotonic()
    out = {"netns_s": round(netns_dismantled(limit), 3)}
    out["quiet_s"] = round(log_quiet(window, elapsed, after, limit), 3)
    since = elapsed + time.monotonic() - t0
    out["kmemleak"] = kmemleak_reports(since) if kmemleak else None
    return out
