"""RM_ADDR and subflow removal in the middle of a transfer; endpoint delete and flush."""

from __future__ import annotations

import pytest

from suites.mptcp.lib import pm
from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.session import client_eps
from suites.mptcp.lib.wire import AddAddr, MpJoin, RemoveAddr

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")


def test_rm_addr_from_server_mid_transfer(mp):
    mp.pair(paths=2)
    mp.pm("ns2", subflows=1, endpoints=(ep("10.0.2.2", "signal", id=5),))
    mp.pm("ns1", subflows=1, add_addr_accepted=1)
    delete = {"at": 0.4, "ns": "ns2", "argv": pm.delete_argv(5)}
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, rate=256 << 10, wait_subflows=1, actions=[delete])
    assert r.intact, r.summary()
    assert r.actions[0]["rc"] == 0 and r.info_start["subflows"] == 1
    assert r.info_end["subflows"] == 0, r.summary()
    assert [e.option.address_ids for e in obs.wire(RemoveAddr)] == [(5,)]
    # RmSubflow counts on the side that removed its own endpoint (upstream's "invert").
    obs.check("ns1", RmAddr=1)
    obs.check("ns2", optional=("RmAddrTx",), RmAddrTx=1, RmSubflow=1)
    assert [e["remid"] for e in obs.pm("ns1", "REMOVED")] == ["5"]


def test_subflow_endpoint_deleted_mid_transfer(mp):
    mp.pair(paths=3)
    mp.pm("ns1", subflows=2, endpoints=client_eps(2))
    mp.pm("ns2", subflows=2)
    first = pm.endpoints(mp.vm, "ns1")[0]["id"]       # 10.0.2.1
    delete = {"at": 0.4, "ns": "ns1", "argv": pm.delete_argv(first)}
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, rate=256 << 10, wait_subflows=2, actions=[delete])
    assert r.intact, r.summary()
    assert r.info_end["subflows"] == 1, r.summary()
    assert [e.option.address_ids for e in obs.wire(RemoveAddr)] == [(first,)]
    obs.check("ns1", optional=("RmAddrTx",), RmAddrTx=1, RmSubflow=1)
    obs.check("ns2", RmAddr=1)
    closed = {e["saddr4"] for e in obs.pm("ns1", "SF_CLOSED")}
    assert "10.0.2.1" in closed, obs.pm("ns1")


def test_endpoint_flush_mid_transfer(vm, mp):
    mp.pair(paths=4)
    mp.pm("ns1", subflows=3, endpoints=client_eps(3))
    mp.pm("ns2", subflows=3)
    flush = {"at": 0.4, "ns": "ns1", "argv": pm.flush_argv()}
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, rate=256 << 10, wait_subflows=3, actions=[flush])
    assert r.intact, r.summary()
    assert r.info_start["subflows"] == 3 and r.info_end["subflows"] == 0, r.summary()
    assert pm.endpoints(vm, "ns1") == []
    # Flushing `subflow` endpoints closes their subflows; 6.12 sends no RM_ADDR for them.
    assert len(obs.pm("ns1", "SF_CLOSED")) == 3, obs.pm("ns1")
    obs.check("ns1", RmSubflow=3)


def test_endpoint_add_change_delete(vm, mp):
    mp.pair(paths=3)
    mp.pm("ns1", endpoints=(ep("10.0.2.1", "subflow", id=7, dev="ns1eth2"),
                            ep("10.0.3.1", "signal", "backup", id=8, port=10200)))
    eps = {e["id"]: e for e in pm.endpoints(vm, "ns1")}
    assert eps[7] == {"address": "10.0.2.1", "id": 7, "subflow": True, "dev": "ns1eth2"}
    assert eps[8]["port"] == 10200 and eps[8]["signal"] and eps[8]["backup"]
    vm.run(pm.change_argv(7, "backup"), ns="ns1")
    assert pm.endpoints(vm, "ns1")[0].get("backup") is True
    vm.run(pm.delete_argv(7), ns="ns1")
    assert [e["id"] for e in pm.endpoints(vm, "ns1")] == [8]
    vm.run(pm.flush_argv(), ns="ns1")
    assert pm.endpoints(vm, "ns1") == []


def test_rm_addr_frees_the_accept_slot(mp):
    # At add_addr_accepted=1 the client stops accepting; the RM_ADDR of the accepted
    # address must reopen the slot, so the next announced address is joined.
    mp.pair(paths=3)
    mp.pm("ns2", subflows=2, endpoints=(ep("10.0.2.2", "signal", id=5),))
    mp.pm("ns1", subflows=2, add_addr_accepted=1)
    delete = {"at": 0.25, "ns": "ns2", "argv": pm.delete_argv(5)}
    announce = {"at": 0.5, "ns": "ns2", "argv": pm.add_argv(ep("10.0.3.2", "signal", id=6))}
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, rate=256 << 10, wait_subflows=1,
                        actions=[delete, announce])
    assert r.intact, r.summary()
    assert [a["rc"] for a in r.actions] == [0, 0] and r.info_start["subflows"] == 1
    assert [str(e.option.address) for e in obs.wire(AddAddr, echo=False)] \
        == ["10.0.2.2", "10.0.3.2"]
    assert [e.dst for e in obs.wire(MpJoin, variant="syn")] == ["10.0.2.2", "10.0.3.2"], \
        obs.pm("ns1")
    assert r.info_end["subflows"] == 1 and r.info_end["add_addr_accepted"] == 1, r.summary()
    obs.check("ns1", AddAddr=2, RmAddr=1, MPJoinSynAckRx=2)
