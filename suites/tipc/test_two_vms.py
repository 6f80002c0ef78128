"""TIPC between two kernels: tipc1 on the test's VM, tipc2 on its peer (--peer-kernel),
one eth bearer each on a wire between the VMs. Unlike netns of one kernel, unicast data
here must cross the link, and the link's own counters show it."""

from __future__ import annotations

import json

import pytest

from suites.tipc.lib.net import link
from suites.tipc.lib.parsers import node_hash, progress, rx_messages, summary, tx_messages

pytestmark = [pytest.mark.multi_vm, pytest.mark.kconfig("CONFIG_TIPC")]
SOCK = "suites.tipc.lib.sock"


@pytest.mark.slow
def test_nodes_up_and_name_table_agrees_on_both_kernels(wired):
    a, b = wired.a, wired.b
    assert [(n.identity, n.state) for n in a.nodes("tipc1")] == [("tipc2", "up")]
    assert [(n.identity, n.state) for n in b.nodes("tipc2")] == [("tipc1", "up")]
    with b.vm.spawn(b.sock("publish", "--type", 18893, "--lower", 5, "--upper", 7),
                    ns="tipc2", ready="ready") as pub:
        port = json.loads(pub.wait_for("ready", b.vm.scaled(5)).splitlines()[0])["port"]
        # tipc1 learns the publication from tipc2's name distributor, over the link.
        row = (18893, 5, 7, "cluster", port[0], "tipc2")
        seen = a.wait(lambda: a.nametable("tipc1"), lambda t: row in [
            (p.type, p.lower, p.upper, p.scope, p.port, p.node) for p in t],
            a.vm.scaled(10), "tipc2's publication in tipc1's name table")
        local = [p for p in b.nametable("tipc2") if p.type == 18893]
    assert [p for p in seen if p.type == 18893] == local
    # Withdrawn on tipc2's side when its socket closed, and so on tipc1's.
    a.wait(lambda: a.nametable("tipc1"), lambda t: all(p.type != 18893 for p in t),
           a.vm.scaled(10), "the withdrawal reaching tipc1")


@pytest.mark.parametrize("count", [300])
def test_rdm_unicast_crosses_the_link(wired, count):
    a, b = wired.a, wired.b
    tx0, rx0 = tx_messages(a.stats("tipc1")[wired.link_a]), \
        rx_messages(b.stats("tipc2")[wired.link_b])
    with b.vm.spawn(b.sock("sink", "--type", 18891, "--instance", 1), ns="tipc2",
                    ready="ready") as sink:
        a.vm.call(f"{SOCK}:send_burst", ns="tipc1", type=18891, instance=1, count=count,
                  size=200)
        got = summary(sink.wait_for('"summary"', b.vm.scaled(10)))
    assert got["received"] == got["distinct"] == count and got["missing"] == []
    assert got["reordered"] == 0 and got["duplicated"] == []
    # + 1: the end marker. The link carried every one of them, both ends say so.
    sent = tx_messages(a.stats("tipc1")[wired.link_a]) - tx0
    came = rx_messages(b.stats("tipc2")[wired.link_b]) - rx0
    assert sent >= count + 1 and came >= count + 1, (sent, came)


@pytest.mark.slow
def test_stream_unicast_crosses_the_link(wired):
    a, b = wired.a, wired.b
    payloads = ["hello", "x" * 20000, "bye"]   # 20000 > the wire's MTU: fragmented
    before = a.stats("tipc1")[wired.link_a]
    with b.vm.spawn(b.sock("serve-stream", "--type", 18889, "--lower", 1, "--upper", 1),
                    ns="tipc2", ready="ready") as srv:
        r = a.vm.call(f"{SOCK}:stream_request", ns="tipc1", type=18889, instance=1,
                      payloads=payloads, wait=a.vm.scaled(5), timeout=a.vm.scaled(10))
        srv.wait_for('"accepted"', b.vm.scaled(5))
    assert r["replies"] == payloads and r["peer"][1] == node_hash("tipc2")
    after = a.stats("tipc1")[wired.link_a]
    # Each payload went out and came back over the link; the big one in fragments.
    assert tx_messages(after) - tx_messages(before) >= len(payloads)
    assert rx_messages(after) - rx_messages(before) >= len(payloads)
    assert after["tx_fragmented"] - before["tx_fragmented"] >= 1
    assert after["rx_fragmented"] - before["rx_fragmented"] >= 1


@pytest.mark.slow
def test_link_goes_down_when_the_peer_nic_goes_down(wired):
    """The wire has no carrier: tipc1's NIC stays up, so only link supervision can tell,
    within one tolerance (the kernel probes every min(tolerance/4, 500 ms))."""
    a, b = wired.a, wired.b
    tolerance = a.stats("tipc1")[wired.link_a].tolerance / 1000
    assert a.links("tipc1")[wired.link_a] == "up"          # the positive control
    b.vm.run(["ip", "link", "set", "eth1", "down"], ns="tipc2")
    a.wait_links("tipc1", {wired.link_a: "down"}, a.vm.scaled(tolerance) + a.vm.scaled(2))
    assert [(n.identity, n.state) for n in a.nodes("tipc1")] == [("tipc2", "down")]
    assert a.vm.run(["ip", "-o", "link", "show", "eth1"], ns="tipc1").stdout.count("UP") >= 1


@pytest.mark.slow
def test_failover_between_two_wires_loses_nothing(wired_dual):
    """Unicast over two links; eth1 goes down under traffic: everything sent meanwhile
    crosses the eth2 link (its own counters say so), nothing lost, doubled or reordered."""
    a, b = wired_dual.a, wired_dual.b
    l1, l2 = link("tipc1", "eth1", "tipc2", "eth1"), link("tipc1", "eth2", "tipc2", "eth2")
    with b.vm.spawn(b.sock("sink", "--type", 18896, "--instance", 1), ns="tipc2",
                    ready="ready") as sink, \
         a.vm.spawn(a.sock("source", "--type", 18896, "--instance", 1, "--interval", 0.005,
                           "--every", 20), ns="tipc1", ready='"sent"') as src:
        a.vm.run(["ip", "link", "set", "eth1", "down"], ns="tipc1")
        a.wait_links("tipc1", {l1: None, l2: "up"}, a.vm.scaled(5))
        # The counter is read before the first progress line and after the second: its
        # delta can only exceed what the progress lines say was sent in between.
        tx_down = tx_messages(a.stats("tipc1")[l2])
        at_down = progress(src.output().stdout)
        a.wait(lambda: progress(src.output().stdout), lambda n: n >= at_down + 100,
               a.vm.scaled(10), "messages sent after eth1 went down")
        at_up = progress(src.output().stdout)
        tx_up = tx_messages(a.stats("tipc1")[l2])
        a.vm.run(["ip", "link", "set", "eth1", "up"], ns="tipc1")
        a.wait_links("tipc1", {l1: "up", l2: "up"}, a.vm.scaled(10))
        src.stop()
        got = summary(sink.wait_for('"summary"', b.vm.scaled(10)))
    assert got["ended"] and got["missing"] == [] and got["duplicated"] == []
    assert got["received"] == progress(src.result.stdout) and got["reordered"] == 0
    # `sent` is printed every 20 messages, after the send: at_down may lag the true count
    # by up to 19, so the link carried at least the progress delta less those.
    assert tx_up - tx_down >= at_up - at_down - 19 >= 81, (tx_up - tx_down, at_up - at_down)


@pytest.mark.slow
def test_link_goes_down_when_the_peer_vm_is_stopped(wired):
    """The peer's whole machine freezes (qemu stopped): tipc1 notices by supervision
    within a tolerance, and the link comes back once the peer runs again."""
    a, b = wired.a, wired.b
    tolerance = a.stats("tipc1")[wired.link_a].tolerance / 1000
    assert a.links("tipc1")[wired.link_a] == "up"          # the positive control
    with b.vm.paused():
        a.wait_links("tipc1", {wired.link_a: "down"}, a.vm.scaled(tolerance) + a.vm.scaled(2))
        assert [(n.identity, n.state) for n in a.nodes("tipc1")] == [("tipc2", "down")]
    a.wait_links("tipc1", {wired.link_a: "up"}, a.vm.scaled(15))
    b.wait_links("tipc2", {wired.link_b: "up"}, b.vm.scaled(15))
