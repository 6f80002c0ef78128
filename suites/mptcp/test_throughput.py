"""Timing case over a router: two subflows beat one when a path is delayed and lossy."""

from __future__ import annotations

import pytest

from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.session import routed

pytestmark = [pytest.mark.kconfig("CONFIG_MPTCP", "CONFIG_NET_SCH_NETEM"), pytest.mark.slow]


def test_two_subflows_beat_one(mp):
    mp.build(routed(paths=2))
    # Both paths rate-limited below what TCG can push; path 2 also delayed and lossy.
    mp.tc("r", ["qdisc", "add", "dev", "r1", "root", "netem", "rate", "2mbit"],
          ["qdisc", "add", "dev", "r2", "root", "netem", "rate", "2mbit", "delay", "20ms",
           "loss", "1%"])
    mp.pm("ns1", subflows=1, add_addr_accepted=1)
    mp.pm("ns2", subflows=1)
    single = mp.transfer("10.1.1.2", size=1 << 20)
    assert single.intact and single.info_end["subflows"] == 0, single.summary()
    mp.pm("ns2", endpoints=(ep("10.1.2.2", "signal"),))
    with mp.observe(capture="r"):
        double = mp.transfer("10.1.1.2", size=1 << 20, wait_subflows=1)
    assert double.intact and double.info_end["subflows"] == 1, double.summary()
    assert double.upload_seconds < 0.8 * single.upload_seconds, \
        (single.upload_seconds, double.upload_seconds)
