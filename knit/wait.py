"""The one poll loop: `wait_until(probe, done, timeout, what)` with a deadline on every wait.

Host side and guest side alike (stdlib only). It raises WaitTimeout naming what it waited
for and the last value seen, so a failure says what did not happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """What was awaited did not happen in time. An AssertionError: in a test it is the
    expectation that failed (a test failure, not a harness error). `last` is the value seen
    last, for callers that judge it themselves."""

    def __init__(self, message: str, last: Any) -> None:
        super().__init__(message)
        self.last = last


def wait_until(probe: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str,
               interval: float = 0.2) -> T:
    """Call `probe` until `done(value)`; return that value, or raise WaitTimeout after
    `timeout` seconds naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{what}: not within {timeout:.1f}s; last: {value!r}", value)
        time.sleep(interval)
