"""RHEL's MPTCP guide for applications that do not ask for it: iperf3, unmodified, forced
onto MPTCP, then `ss -nti` (tcp-ulp-mptcp) and `nstat MPTcp*` checked.

Two ways (suites.mptcp.lib.force): `mptcpize run` (LD_PRELOAD), and bpf/mptcpify on
update_socket_protocol deployed with `knit mptcpify attach --cgroup DIR [--comm NAME]`.
Two paths, a client `subflow` endpoint on the second: every MPTCP connection gets a join.
iperf3 opens two connections, the control one and one data stream.
"""

from __future__ import annotations

import pytest

from knit import kbuild, mptcpify
from suites.mptcp.lib import iperf
from suites.mptcp.lib.force import Mptcpify, Mptcpize
from suites.mptcp.lib.session import client_eps

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")
CONNECTIONS = 2          # iperf3's control connection and its one data stream


@pytest.fixture(params=["update_socket_protocol", "mptcpize"])
def way(request, vm, knit_kernel):
    """A way to force iperf3 onto MPTCP, active for the test."""
    if request.param == "mptcpize":
        yield Mptcpize()
        return
    problem = mptcpify.version_problem(knit_kernel.version)
    if problem:
        pytest.skip(problem)
    w = Mptcpify(vm, str(kbuild.build_bpf(mptcpify.SRC).path))
    yield w
    w.stop()


def two_paths(mp, **sysctls: str) -> None:
    mp.pair(paths=2, ns1=sysctls, ns2=sysctls)
    mp.pm("ns1", subflows=1, endpoints=client_eps(1))
    mp.pm("ns2", subflows=1)


def test_iperf3_forced_onto_mptcp(mp, way, record_property):
    two_paths(mp)
    with mp.observe(capture=None) as obs:
        forced = iperf.run(mp.vm, way.forced, way.forced)
    assert {s.ulp for s in forced.data_subflows()} == {"mptcp"}, forced.samples[-1:]
    assert len(forced.data_subflows()) == 2              # the initial subflow and the join
    obs.check("ns1", MPCapableSYNTX=CONNECTIONS, MPCapableSYNACKRX=CONNECTIONS)
    obs.check("ns2", MPCapableSYNRX=CONNECTIONS, MPCapableACKRX=CONNECTIONS,
              MPJoinAckRx=CONNECTIONS)
    assert forced.bytes_agree(), forced.byte_counts()
    # The positive control: the same iperf3, not forced, in the same VM and topology.
    with mp.observe(capture=None) as obs:
        plain = iperf.run(mp.vm, way.control, way.forced)
    assert {s.ulp for s in plain.data_subflows()} == {None}, plain.samples[-1:]
    obs.check("ns1", MPCapableSYNTX=0)
    obs.check("ns2", MPCapableSYNRX=0, MPCapableFallbackACK=0)
    assert plain.bytes_agree(), plain.byte_counts()
    record_property("iperf3_bits_per_second", {"mptcp": forced.bits_per_second,
                                               "tcp": plain.bits_per_second})


def test_iperf3_forced_with_mptcp_disabled(mp, way):
    """net.mptcp.enabled=0: the kernel refuses an MPTCP socket (mptcp_init_sock:
    ENOPROTOOPT) and neither way falls back, so the forced iperf3 cannot start; the same
    iperf3 not forced still works, over TCP."""
    two_paths(mp, **{"net.mptcp.enabled": "0"})
    with pytest.raises(iperf.IperfFailed) as failed:
        iperf.run(mp.vm, way.forced, way.forced)
    assert failed.value.side == "-s" and "Protocol not available" in failed.value.output
    with mp.observe(capture=None) as obs:
        r = iperf.run(mp.vm, way.control, way.control)
    assert {s.ulp for s in r.data_subflows()} == {None}, r.samples[-1:]
    obs.check("ns1", MPCapableSYNTX=0)
    assert r.bytes_agree(), r.byte_counts()


def test_update_socket_protocol_scoped_by_command_name(mp, vm, knit_kernel):
    """`--comm iperf3`: in the same cgroup, the same binary under another name keeps TCP;
    the program's counters say how many sockets each way."""
    problem = mptcpify.version_problem(knit_kernel.version)
    if problem:
        pytest.skip(problem)
    w = Mptcpify(vm, str(kbuild.build_bpf(mptcpify.SRC).path), comm="iperf3")
    try:
        two_paths(mp)
        other = iperf.run(vm, w.control, w.forced)
        assert {s.ulp for s in other.data_subflows()} == {None}, other.samples[-1:]
        before = w.stats()
        forced = iperf.run(vm, w.forced, w.forced)
        assert {s.ulp for s in forced.data_subflows()} == {"mptcp"}, forced.samples[-1:]
        after = w.stats()
    finally:
        w.stop()
    # The client's two sockets; the server's listener was upgraded in both runs.
    assert after["upgraded"] - before["upgraded"] == 1 + CONNECTIONS
    assert other.bytes_agree() and forced.bytes_agree(), (other.byte_counts(),
                                                          forced.byte_counts())
