"""knit.mptcpify's command builders, and how suites.mptcp.lib.iperf finds iperf3's data
connection in `ss -nti` output (real capture: tests/unit/data/ss_tniH_*, one MPTCP
connection with three subflows, see its .meta.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knit import mptcpify
from suites.mptcp.lib.iperf import IperfRun, connection
from suites.mptcp.lib.ss import parse_ss

SS = (Path(__file__).parent / "data" / "ss_tniH_6.12.117+deb12-amd64.txt").read_text()


def test_subflows_of_one_connection_share_its_local_token():
    socks = parse_ss(SS)
    assert len(socks) == 3 and {s.ulp for s in socks} == {"mptcp"}
    assert {connection(s) for s in socks} == {"99adc8b3"}


def test_data_subflows_are_the_busiest_connection_with_most_subflows():
    socks = parse_ss(SS)
    run = IperfRun({}, {}, [socks[:1], socks])
    assert run.data_subflows() == socks


def test_plain_tcp_sockets_are_their_own_connection():
    tcp = [s for s in parse_ss(SS)]
    for s in tcp:
        s.info.pop("token")
    assert len({connection(s) for s in tcp}) == 3


def test_version_problem_names_the_hook():
    assert "update_socket_protocol" in mptcpify.version_problem("6.1.0-57-amd64")
    assert mptcpify.version_problem("6.12.118+deb13-amd64") is None
    assert mptcpify.version_problem("7.3.4+deb13-amd64") is None


def test_conf_value_is_the_struct_bytes():
    v = mptcpify.conf_value(0x0102, "iperf3")
    assert v[:8] == ["2", "1", "0", "0", "0", "0", "0", "0"]
    assert bytes(map(int, v[8:])) == b"iperf3".ljust(16, b"\0") and len(v) == 24
    with pytest.raises(ValueError, match="15 bytes"):
        mptcpify.conf_value(1, "a-name-too-long-x")


def test_attach_loads_autoattaches_then_scopes():
    cmds = mptcpify.attach_cmds("o.bpf.o", "/sys/fs/bpf/p", 7, None)
    assert cmds[1][:3] == ["bpftool", "prog", "loadall"] and cmds[1][-1] == "autoattach"
    assert cmds[2][:5] == ["bpftool", "map", "update", "pinned", "/sys/fs/bpf/p/maps/mptcpify_conf"]
    assert mptcpify.detach_cmds("/sys/fs/bpf/p") == [["rm", "-r", "/sys/fs/bpf/p"]]
