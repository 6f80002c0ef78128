"""The host's CPUs for one test at a time, across xdist workers: an `exclusive` test waits
until the other workers' current tests end, and they start no new one until it ends.

Under TCG each guest wants a whole host core; a test whose script paces itself by wall
clock (mptcp_join's slow removals) loses events when another guest shares the cores.
flock locks vanish with their process, so a crashed worker never leaves others waiting.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
