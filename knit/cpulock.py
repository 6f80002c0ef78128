"""The host's CPUs for one test at a time, across xdist workers: an `exclusive` test waits
until the other workers' current tests end, and they start no new one until it ends.

Under TCG each guest wants a whole host core; a test whose script paces itself by wall
clock (mptcp_join's slow removals) loses events when another guest shares the cores.
flock locks vanish with their process, so a crashed worker never leaves others waiting.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SLOT_POLL_S = 0.2
# Busy guests the host's CPUs carry: under TCG each emulated guest wants a whole core
# (`-n 4` on 2 cores took 1.85x the wall time of `-n 2` and starved wall-clock-paced
# cases); with KVM a guest costs a fraction of one.
GUESTS_PER_CPU = {"tcg": 1, "kvm": 2}


def slot_count(accel: str | None, cpus: int | None = None) -> int:
    """How many tests may run their guests at once: KNIT_GUEST_SLOTS, else per CPU."""
    forced = os.environ.get("KNIT_GUEST_SLOTS", "")
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    return max(1, (cpus or os.cpu_count() or 1) * GUESTS_PER_CPU.get(accel or "tcg", 1))


def slot_dir() -> Path:
    """Host-wide: every knit session on this host (each worker, each checkout) shares the
    slots, since they share the CPUs. KNIT_SLOT_DIR moves them (e.g. one set per cgroup)."""
    forced = os.environ.get("KNIT_SLOT_DIR")
    if forced:
        return Path(forced)
    from knit.kernels.cache import cache_dir  # late: cpulock stays import-light
    return cache_dir() / "slots"


@contextmanager
def slot(root: Path, count: int) -> Iterator[float]:
    """One of `count` guest slots, shared by the xdist workers; yields the seconds waited.
    More workers than slots queue here instead of starving each other's guests."""
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    files = [open(root / f".slot-{i}", "a+") for i in range(count)]  # noqa: SIM115
    try:
        held = None
        while held is None:
            for f in files:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                held = f
                break
            else:
                time.sleep(SLOT_POLL_S)
        try:
            yield time.monotonic() - t0
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    finally:
        for f in files:
            f.close()


@contextmanager
def hold(root: Path, exclusive: bool) -> Iterator[None]:
    """Shared for an ordinary test, exclusive for one that needs the CPUs to itself.
    The turnstile gives a waiting exclusive test priority: without it the other worker
    re-takes its shared lock between tests and the exclusive one can wait forever."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".cpu-turnstile", "a+") as gate, open(root / ".cpu", "a+") as cpu:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(cpu, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(cpu, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
