"""Backup subflows: idle while the primary works, used when it fails; MP_PRIO."""

from __future__ import annotations

import pytest

from suites.mptcp.lib import pm
from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.ss import parse_ss
from suites.mptcp.lib.wire import MpJoin, MpPrio

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")
BACKUP = ep("10.0.2.1", "subflow", "backup", id=2, dev="ns1eth2")


def test_backup_subflow_idle_while_primary_up(mp):
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=(BACKUP,))
    mp.pm("ns2", subflows=1)
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, reply=1 << 20, wait_subflows=1)
    assert r.intact and r.info_end["subflows"] == 1, r.summary()
    assert [e.option.backup for e in obs.wire(MpJoin, variant="syn")] == [True]
    obs.check("ns2", MPJoinSynBackupRx=1)
    # Per-subflow counts from the client's tcp_info: a capture drops packets under TCG.
    sf = {s["local"][0]: s for s in r.subflows_end}
    assert sf["10.0.1.1"]["bytes_acked"] >= 1 << 20, sf
    assert only_reinjected(obs, "ns1", "ns2", sf["10.0.2.1"]["data_segs_out"]), sf
    assert only_reinjected(obs, "ns2", "ns1", sf["10.0.2.1"]["data_segs_in"]), sf


def only_reinjected(obs, sender: str, receiver: str, backup_segs: int) -> bool:
    """No data on the backup, except stale data the sender reinjected there: the kernel
    uses a backup when the primary makes no progress (MPTCPRetrans), which a slow TCG
    guest can trigger; the receiver then sees duplicates (DuplicateData)."""
    return backup_segs == 0 or (obs.count(sender, "MPTCPRetrans") > 0
                                and obs.count(receiver, "DuplicateData") > 0)


def test_data_moves_to_backup_when_primary_fails(mp):
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=(BACKUP,))
    mp.pm("ns2", subflows=1)
    down = {"at": 0.3, "ns": "ns1", "argv": ["ip", "link", "set", "ns1eth1", "down"]}
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, reply=512 << 10, wait_subflows=1, actions=[down])
    assert r.intact, r.summary()
    # Everything after the failure (70% up, all of the reply) went over the backup: the
    # primary (live, so its counts are final) carried no more than was sent before it went
    # down and none of the reply, and there was no third subflow. The backup's own counts
    # are not final: it can close while the client still reads the reply from the buffer.
    primary, backup = r.subflow("10.0.1.1"), r.subflow("10.0.2.1")
    assert [sf["local"][0] for sf in r.subflows_end] == ["10.0.1.1", "10.0.2.1"], r.summary()
    assert not primary["gone"] and primary["bytes_received"] == 0, r.subflows_end
    # +1: the SYN. More only where the sender retransmitted at the MPTCP level before the
    # failure, on the primary itself (seen on 7.3.4 under TCG: 7 MPTCPRetrans, 16 KB).
    over = primary["bytes_acked"] > r.actions[0]["sent"] + 1
    assert not over or only_reinjected(obs, "ns1", "ns2", 1), r.subflows_end
    assert backup["bytes_acked"] > 0, r.subflows_end


def test_mp_prio_on_the_wire(vm, mp):
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=(ep("10.0.2.1", "subflow", id=2, dev="ns1eth2"),))
    mp.pm("ns2", subflows=1)
    to_backup = {"at": 0.4, "ns": "ns1", "argv": pm.change_argv(2, "10.0.2.1", "backup")}
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, rate=256 << 10, wait_subflows=1, actions=[to_backup])
    assert r.intact, r.summary()
    assert r.actions[0]["rc"] == 0, r.actions[0]["stderr"]
    prio = obs.wire(MpPrio)
    assert [(e.src, e.option.backup) for e in prio] == [("10.0.2.1", True)], obs.events[-5:]
    obs.check("ns1", MPPrioTx=1)
    obs.check("ns2", MPPrioRx=1)
    assert pm.endpoints(vm, "ns1")[0].get("backup") is True


def test_mp_prio_received_makes_the_subflow_backup(mp):
    """The receiver of MP_PRIO marks the subflow backup: its monitor reports SF_PRIO
    with backup=1 (the subflow's flag), `ss` shows the remote-backup flag B only after the
    MP_PRIO (the control: read before it), and the server's reply avoids that subflow."""
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=(ep("10.0.2.1", "subflow", id=2, dev="ns1eth2"),))
    mp.pm("ns2", subflows=1)
    ss = {"ns": "ns2", "argv": ["ss", "-tniH", "state", "established"]}
    actions = [{"at": 0.2, **ss},
               {"at": 0.4, "ns": "ns1", "argv": pm.change_argv(2, "10.0.2.1", "backup")},
               {"at": 1.0, **ss}]  # after the upload, before the reply
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, reply=1 << 20, rate=256 << 10, wait_subflows=1,
                        actions=actions)
    assert r.intact and r.actions[1]["rc"] == 0, r.summary()
    before, after = (sf_flags(a["stdout"], peer="10.0.2.1") for a in r.actions[::2])
    assert before and "B" not in before and "B" in after, r.actions[::2]
    prio = [(e["daddr4"], e["backup"]) for e in obs.pm("ns2", "SF_PRIO")]
    assert prio == [("10.0.2.1", "1")], obs.pm("ns2")
    obs.check("ns2", MPPrioRx=1)
    # Nothing of the reply on the backup, except what the server reinjected there.
    assert only_reinjected(obs, "ns2", "ns1", r.subflow("10.0.2.1")["data_segs_in"]), \
        r.subflows_end


def sf_flags(ss_out: str, peer: str) -> str:
    """The MPTCP subflow flags `ss` shows for the subflow to `peer` ("" if none)."""
    return next((s.info.get("flags", "") for s in parse_ss(ss_out)
                 if s.peer_addr == peer and s.ulp == "mptcp"), "")
