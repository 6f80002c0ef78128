"""The result of one MPTCP transfer (traffic.transfer, run in the guest), typed on the host.

The guest returns JSON (a dict); `Transfer.from_dict` gives it names, and its repr is the
short summary a failed assert shows: `assert r.intact, r.summary()` (pytest cuts a non-str
message to 240 characters, so pass the summary as a string for the whole of it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

SUMMARY_KEYS = ("connect", "size", "sent", "reply", "received", "mptcp", "info_end", "seconds",
                "server_error")


@dataclass(frozen=True, repr=False)
class Transfer:
    """One connection: `size` bytes up, `reply` down, each checked with SHA-256.

    info_start/info_end: MPTCP_INFO's head (subflows, add_addr_accepted, csum_enabled, ...)
    before and after the upload, None after a fallback to TCP. subflows_end: the client's
    last tcp_info view of each subflow. actions/probes: the commands run mid-transfer and
    after the upload ({"argv", "rc", "stdout", "stderr", ...}). server: the server's side.
    """

    connect: str
    port: int
    size: int
    reply: int
    intact: bool = False
    mptcp: bool = False
    sent: int = 0
    received: int | None = None
    local: list = field(default_factory=list)          # [addr, port] of the client
    info_start: dict[str, int] | None = None
    info_end: dict[str, int] | None = None
    subflows_end: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    server_error: str | None = None
    seconds: float | None = None
    upload_seconds: float | None = None
    join_seconds: float | None = None   # until wait_subflows joined; None: not reached
    sent_sha256: str | None = None
    received_sha256: str | None = None

    # Called when a summary is made: the counters of the window the transfer ran in.
    mib: Callable[[], dict[str, dict[str, int]]] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any],
                  mib: Callable[[], dict[str, dict[str, int]]] | None = None) -> Transfer:
        """From traffic.transfer's dict; keys this class does not name are left out."""
        names = {f.name for f in fields(cls)} - {"mib"}
        return cls(**{k: v for k, v in d.items() if k in names}, mib=mib)

    def subflow(self, local: str) -> dict[str, Any]:
        """The client's last tcp_info view of the subflow from `local` (a capture loses
        packets under TCG); zeros if never seen. A subflow that is "gone" closed before the
        end, so its counts are lower bounds."""
        for sf in self.subflows_end or []:
            if sf["local"][0] == local:
                return sf
        return {"local": [local, 0], "bytes_acked": 0, "bytes_received": 0, "gone": True}

    def bytes_on(self, local: str) -> int:
        """Payload both ways on the subflow from `local`, as last seen before the end."""
        sf = self.subflow(local)
        return sf["bytes_acked"] + sf["bytes_received"]

    def summary(self) -> str:
        """What a failed assert needs: sizes, MPTCP state at the end, server, actions."""
        s: dict[str, Any] = {k: getattr(self, k) for k in SUMMARY_KEYS}
        s["server"] = {k: v for k, v in self.server.items() if k != "info"}
        s["actions"] = [(a["argv"], a["rc"], a["stderr"].strip()) for a in self.actions]
        trouble = self.mib() if self.mib else {}
        if any(trouble.values()):
            s["mib"] = trouble
        return json.dumps(s)

    def __repr__(self) -> str:
        return f"Transfer({self.summary()})"
