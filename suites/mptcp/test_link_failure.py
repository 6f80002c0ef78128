"""A veth goes down in the middle of a transfer: every byte still arrives."""

from __future__ import annotations

import pytest

from suites.mptcp.lib.session import client_eps

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")


@pytest.mark.parametrize("failing, surviving", [("ns1eth1", "10.0.2.1"),
                                                ("ns1eth2", "10.0.1.1")],
                         ids=["primary", "secondary"])
def test_link_down_mid_transfer(mp, failing, surviving):
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=client_eps(1))
    mp.pm("ns2", subflows=1)
    down = {"at": 0.3, "ns": "ns1", "argv": ["ip", "link", "set", failing, "down"]}
    with mp.observe() as obs:
        r = mp.transfer(size=2 << 20, reply=512 << 10, wait_subflows=1, actions=[down])
    assert r.actions[0]["rc"] == 0, r.actions
    assert r.intact, r.summary()
    # The surviving path carried at least what was left after the failure.
    assert r.bytes_on(surviving) >= int(0.7 * (2 << 20)), r.subflows_end
    assert obs.count("ns1", "MPCapableSYNTX") == 1          # one connection, not a retry
