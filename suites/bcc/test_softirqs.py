"""softirqs accounts the softirq time of traffic we make in the netns: net_rx (veth receive)
and net_tx (netem's watchdog reschedules the qdisc) are non-zero while TCP bulk traffic
runs, idle intervals are small next to loaded ones, and -d / -T output parses."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from knit.errors import CmdFailed
from knit.topology import Topology
from knit.vm import VM
from suites.bcc.lib import tools
from suites.bcc.lib.net import Bcc

LOAD_S = 4.0
# libbpf-tools 0.31 (Debian 13): the 6.12 verifier rejects softirqs -d's histogram update,
# an array index by softirq vector that the compiled program no longer bounds. 0.26 loads.
D_REJECTED = "invalid access to map value"


@pytest.fixture
def load(vm: VM, net: Topology) -> Callable[[int], dict]:
    """TCP bulk traffic ns1 -> ns2 for LOAD_S; netem on ns1eth1 so that the qdisc is
    rescheduled from its watchdog, which raises NET_TX (veth itself has no queue)."""
    vm.run(["tc", "qdisc", "add", "dev", "ns1eth1", "root", "netem", "delay", "1ms"], ns="ns1")
    return lambda port: vm.call("suites.bcc.lib.traffic:bulk", ns="ns1", server_ns="ns2",
                                addr=net.addr("ns2", "ns2eth1", 4), port=port, seconds=LOAD_S,
                                timeout=vm.scaled(60))


def test_interval_output_under_load_and_idle(bcc: Bcc, load: Callable[[int], dict]) -> None:
    with bcc.trace("softirqs", "-T", "1") as tr:
        idle = tr.wait(lambda ivs: len(ivs) >= 3, bcc.vm.scaled(10))[1:3]  # the 1st may be partial
        before = len(tr.events)
        sent = load(7001)["sent"]
        now = len(tr.events)  # one more report covers the end of the load
        loaded = tr.wait(lambda ivs: len(ivs) > now, bcc.vm.scaled(5))[before:]
    assert sent > 0 and loaded, f"no interval reported during {LOAD_S}s of load"
    peak = max(loaded, key=lambda iv: iv.total("net_rx"))
    assert peak.total("net_rx") > 0 and any(iv.total("net_tx") > 0 for iv in loaded)
    for iv in idle:  # nothing in the guest talks when we don't
        assert iv.total("net_rx") * 10 < peak.total("net_rx"), (iv, peak)
    times = [time.strptime(iv.time, "%H:%M:%S") for iv in tr.events]  # -T: every interval
    assert times == sorted(times) and len(times) >= len(idle) + len(loaded)


def test_distribution_histograms(bcc: Bcc, load: Callable[[int], dict]) -> None:
    try:
        with bcc.trace("softirqs", "-d") as tr:
            load(7002)
    except CmdFailed as e:
        if bcc.variant == "libbpf" and D_REJECTED in e.stderr + e.stdout:
            v = tools.package_version("libbpf-tools", bcc.vm.cfg.userspace)
            pytest.xfail(f"libbpf-tools {v}: softirqs -d rejected by the verifier ({D_REJECTED})")
        raise
    [report] = tr.events  # one report, printed at SIGINT
    assert {"net_rx", "net_tx"} <= set(report.hists) and report.unit == "usecs"
    for name, hist in report.hists.items():
        assert sum(hist.values()) > 0, name
        for lo, hi in hist:  # log2 buckets: 0 -> 1, 2 -> 3, 4 -> 7, ...
            assert hi == (1 if lo == 0 else 2 * lo - 1), (name, lo, hi)

