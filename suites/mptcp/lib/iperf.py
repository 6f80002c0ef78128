"""Host side: iperf3 as RHEL's MPTCP guide runs it (`iperf3 -s` / `iperf3 -c ADDR -t 3`),
with JSON results (-J) from both ends and `ss -nti` sampled on the client while it runs.

`client`/`server` are the iperf3 commands up to the program (["iperf3"], ["mptcpize",
"run", "iperf3"], a cgroup that bpf/mptcpify watches...): how a case forces it onto MPTCP
or leaves it alone (suites.mptcp.lib.force).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from knit.vm import VM
from knit.wait import wait_until
from suites.mptcp.lib.ss import SsSocket, parse_ss

PORT = 5201


@dataclass(frozen=True)
class IperfRun:
    client: dict                  # iperf3 -c -J
    server: dict                  # iperf3 -s -1 -J
    samples: list[list[SsSocket]]  # `ss -ntiH dport = :PORT` on the client, while it ran
    buffers: int = 0              # tcp_wmem max (client) + tcp_rmem max (server), bytes

    @property
    def sent(self) -> int:
        """Bytes the client's data stream wrote (its own JSON, end.sum_sent)."""
        return int(self.client["end"]["sum_sent"]["bytes"])

    @property
    def received(self) -> int:
        """Bytes the server's data stream read (the server's JSON, end.sum_received)."""
        return int(self.server["end"]["sum_received"]["bytes"])

    @property
    def reported(self) -> int:
        """What the client was told the server received (its JSON, end.sum_received)."""
        return int(self.client["end"]["sum_received"]["bytes"])

    @property
    def block(self) -> int:
        return int(self.client["start"]["test_start"]["blksize"])

    def bytes_agree(self) -> bool:
        """The server's own count is what the client was told, exactly. The client counted
        what it wrote: the server stops reading at the test's end, so what was still
        buffered then (at most the socket buffers of each subflow) is sent, never read;
        one block either way for the write that raced the timer (seen: 128 KiB more
        received than end.sum_sent under mptcpize; 7.75 MiB less over plain TCP)."""
        gap = self.sent - self.received
        in_flight = self.buffers * max(1, len(self.data_subflows()))
        return self.received == self.reported > 0 and -self.block <= gap <= in_flight + \
            self.block

    def byte_counts(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.received, "reported": self.reported,
                "block": self.block, "buffers": self.buffers}

    @property
    def bits_per_second(self) -> float:
        return float(self.server["end"]["sum_received"]["bits_per_second"])

    def data_subflows(self) -> list[SsSocket]:
        """The client's sockets of the data connection: per sample, sockets grouped by
        connection (an MPTCP subflow's `token:` names its connection; a TCP socket is
        its own), the group that moved the most bytes (the control connection carries a
        few hundred); of all samples, the one where that group had the most subflows."""
        best: list[SsSocket] = []
        for sample in self.samples:
            groups: dict[str, list[SsSocket]] = {}
            for sk in sample:
                groups.setdefault(connection(sk), []).append(sk)
            if groups:
                data = max(groups.values(), key=lambda g: sum(acked(x) for x in g))
                if len(data) >= len(best):
                    best = data
        return best


def acked(sk: SsSocket) -> float:
    return sk.num("bytes_acked", 0) or 0


def connection(sk: SsSocket) -> str:
    """What the subflows of one MPTCP connection share: the local token, the second of
    ss's `token:REMOTE(id:N)/LOCAL(id:M)` (the remote one reads 0000 on some subflows,
    tests/unit/data/ss_tniH_*); for a TCP socket, its ends."""
    token = sk.info.get("token")
    return re.sub(r"\(id:\d+\)", "", token.rpartition("/")[2]) if token else \
        f"{sk.local} {sk.peer}"


class IperfFailed(AssertionError):
    """iperf3 `side` ("-s"/"-c") exited `rc` before its test was done; `output` says why."""

    def __init__(self, side: str, rc: int | None, output: str) -> None:
        super().__init__(f"iperf3 {side} exited {rc}: {output[-800:]}")
        self.side, self.rc, self.output = side, rc, output


def _json(text: str, who: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        raise AssertionError(f"iperf3 {who} printed no JSON: {text[-500:]!r}") from None


def run(vm: VM, client: Sequence[str], server: Sequence[str], connect: str = "10.0.1.2",
        seconds: int = 3, client_ns: str = "ns1", server_ns: str = "ns2") -> IperfRun:
    """One iperf3 test: server (one-off) in `server_ns`, client in `client_ns`."""
    server_argv = [*server, "-s", "-1", "-J", "-p", str(PORT)]
    client_argv = [*client, "-c", connect, "-t", str(seconds), "-J", "-p", str(PORT)]
    limit = vm.scaled(seconds + 20)
    with vm.spawn(server_argv, ns=server_ns) as srv:
        def listening() -> tuple[str, int | None]:
            rc = srv.output().rc
            return vm.run(["ss", "-tlnH", f"sport = :{PORT}"], ns=server_ns).stdout, rc
        _, rc = wait_until(listening, lambda v: bool(v[0]) or v[1] is not None,
                           vm.scaled(10), f"iperf3 -s listening on {PORT} in {server_ns}")
        if rc is not None:
            out = srv.output()
            raise IperfFailed("-s", rc, out.stdout + out.stderr)
        samples = []
        with vm.spawn(client_argv, ns=client_ns) as cli:
            deadline = time.monotonic() + limit
            while (out := cli.output()).rc is None and time.monotonic() < deadline:
                ss = vm.run(["ss", "-ntiH", f"dport = :{PORT}"], ns=client_ns).stdout
                samples.append(parse_ss(ss))
                time.sleep(0.3)
        if out.rc is None:
            raise AssertionError(f"iperf3 -c did not finish within {limit:.0f}s")
        if out.rc:
            raise IperfFailed("-c", out.rc, out.stdout + out.stderr)
        wait_until(lambda: srv.output().rc, lambda rc: rc is not None, vm.scaled(10),
                   "iperf3 -s -1 exiting after its test")
        sout = srv.output()
    buffers = _max_buffer(vm, client_ns, "tcp_wmem") + _max_buffer(vm, server_ns, "tcp_rmem")
    return IperfRun(_json(out.stdout, "-c"), _json(sout.stdout, "-s"), samples, buffers)


def _max_buffer(vm: VM, ns: str, sysctl: str) -> int:
    """The third field of net.ipv4.tcp_[rw]mem: how far autotuning may grow a buffer."""
    return int(vm.run(["sysctl", "-n", f"net.ipv4.{sysctl}"], ns=ns).stdout.split()[2])
