"""Two VMs on one wire: the peer boots on --peer-kernel, a topology spans both, a wire's
NICs carry IPv4 and IPv6, netem shapes a wire, and the NICs come back after a test."""

import pytest

from knit.topology import Netem, pair

pytestmark = pytest.mark.multi_vm


def ping(machine, ns: str, dst: str, count: int = 3) -> str:
    return machine.run(["ping", "-c", str(count), "-i", "0.2", "-W", "5", dst], ns=ns).stdout


def test_pair_runs_both_kernels_and_pings_across_the_wire(vm, peer, topo, knit_kernel):
    assert vm.run(["uname", "-r"]).stdout.strip() == knit_kernel.version
    assert peer.run(["uname", "-r"]).stdout.strip() == peer.cfg.kernel.version
    t = topo(pair(paths=2, b_vm="b"))
    for dst in ("10.0.1.2", "dead:beef:2::2"):
        assert " 0% packet loss" in ping(vm, "ns1", dst)
    assert " 0% packet loss" in ping(peer, "ns2", t.addr("ns1", "ns1eth1"))
    # Each side holds only its own node: ns2 is not a netns of the test's own VM.
    assert "ns2" not in vm.run(["ip", "netns", "list"]).stdout
    assert "ns2eth1" in peer.run(["ip", "-o", "link"], ns="ns2").stdout


def rtt_min_ms(out: str) -> float:
    # "rtt min/avg/max/mdev = 201.2/203.3/205.8/1.9 ms"
    return float(out.rsplit("=", 1)[1].split("/")[0])


@pytest.mark.slow
def test_netem_on_a_wire_delays_both_ways(vm, peer, topo):
    topo(pair(paths=1, b_vm="b", v6=False, netem=Netem(delay_ms=150)))
    # Both ends' egress delayed: at least 300 ms per round trip.
    assert rtt_min_ms(ping(vm, "ns1", "10.0.1.2")) >= 300


@pytest.mark.slow
def test_wire_nics_are_back_in_the_root_netns_after_a_test(vm, peer, topo):
    # Positive control for the parking check below: a wire NIC under its node's name.
    topo(pair(paths=1, b_vm="b", v6=False))
    assert "ns1eth1" in vm.run(["ip", "-o", "link"], ns="ns1").stdout
    parked = vm.run(["ip", "-o", "link", "show", "kw0"], check=False)
    assert not parked.ok   # kw0 is in ns1 now, renamed


def test_wire_nics_parked_between_tests(vm, peer):
    for machine in (vm, peer):
        out = machine.run(["ip", "-o", "link"]).stdout
        assert all(f"kw{i}:" in out for i in range(4)), out
