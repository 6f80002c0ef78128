"""Host side of the guest channel: JSON lines over qemu's virtio-serial chardev socket."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from knit.errors import ChannelClosed, ChannelTimeout, RemoteError


class Channel:
    """Request/response with ids; every wait has a deadline.

    One reader thread routes replies to waiting callers, so several requests (a
    background tool and a foreground command) can be in flight at once.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self.closed: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def connect(cls, path: str, deadline: float, alive: Callable[[], bool]) -> Channel:
        """Connect to qemu's server socket, retrying until `deadline` (monotonic)."""
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return cls(s)
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
            if not alive():
                raise ChannelClosed("qemu exited before its channel socket opened")
            if time.monotonic() > deadline:
                raise ChannelTimeout(f"channel socket {path} did not open in time")
            time.sleep(0.05)

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue  # garbage before the agent took the port
                    with self.cond:
                        if "id" in msg:
                            self.replies[msg["id"]] = msg
                        else:
                            self.events.append(msg)
                        self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.closed = self.closed or "guest channel closed"
            self.cond.notify_all()

    def find_event(self, name: str, **match: object) -> dict | None:
        """A received event of that name whose fields match, without waiting."""
        with self.cond:
            for ev in self.events:
                if ev.get("event") == name and all(ev.get(k) == v for k, v in match.items()):
                    return ev
        return None

    def wait_event(self, name: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if ev.get("event") == name:
                        return ev
                self._wait(deadline, f"no '{name}' from the guest agent within {timeout:.0f}s")

    def _wait(self, deadline: float, what: str) -> None:
        if self.closed:
            raise ChannelClosed(self.closed)
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChannelTimeout(what)
        self.cond.wait(min(left, 0.5))

    def request(self, op: str, wait: float, **args: Any) -> Any:
        rid = next(self.ids)
        data = (json.dumps({"id": rid, "op": op, "args": args}) + "\n").encode()
        with self.lock:
            if self.closed:
                raise ChannelClosed(self.closed)
        try:
            self.sock.sendall(data)
        except OSError:
            # qemu died before the reader saw EOF: the same cause, not a raw BrokenPipeError.
            self.close("guest channel closed")
            raise ChannelClosed(self.closed) from None
        deadline = time.monotonic() + wait
        with self.cond:
            while rid not in self.replies:
                self._wait(deadline, f"guest did not answer '{op}' within {wait:.0f}s")
            msg = self.replies.pop(rid)
        if not msg["ok"]:
            raise RemoteError(msg["error"], msg.get("traceback", ""))
        return msg["result"]

    def close(self, why: str = "closed by host") -> None:
        with self.cond:
            self.closed = self.closed or why
            self.cond.notify_all()
        try:
            self.sock.close()
        except OSError:
            pass
