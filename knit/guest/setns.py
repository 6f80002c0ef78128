"""The one setns: move the calling thread into a named network namespace.

CLONE_NEWNET is per thread, so this moves one thread (the whole process if it has one).
Stdlib only and cheap to import: the agent loads it at start-up (ctypes only on first use:
every module costs 50-200 ms of boot under TCG), guest-side helpers (suites/*/lib) use it
from threads, and knit.guest.netns builds namespaces on it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """libc with errno, loaded once. Call it in a parent before forking: loading it in a
    child forked from a threaded process can deadlock on the import lock."""
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def check(rc: int, what: str) -> None:
    """Raise OSError naming `what` when a libc call returned non-zero."""
    if rc != 0:
        import ctypes
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns_fd(fd: int, what: str) -> None:
    """Enter the netns open at `fd`; `what` names it in the error."""
    check(libc().setns(fd, CLONE_NEWNET), what)


def setns(ns: str | None) -> None:
    """Move the calling thread into netns `ns` (/run/netns/<ns>); None or "" stays."""
    if not ns:
        return
    fd = os.open(f"{NETNS_DIR}/{ns}", os.O_RDONLY)
    try:
        setns_fd(fd, f"setns({ns})")
    finally:
        os.close(fd)
