"""Extra subflows from client `subflow` endpoints, and `ip mptcp limits` enforcement."""

from __future__ import annotations

import pytest

from suites.mptcp.lib import pm
from suites.mptcp.lib.session import client_eps
from suites.mptcp.lib.ss import parse_ss
from suites.mptcp.lib.wire import MpJoin

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_subflow_endpoints(mp, n):
    mp.pair(paths=4)
    mp.pm("ns1", subflows=n, endpoints=client_eps(n))
    mp.pm("ns2", subflows=n)
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, reply=256 << 10, wait_subflows=n,
                        probes=[["ss", "-MniH"]])
    assert r.intact, r.summary()
    # MPTCP_INFO (what inet_diag/ss -M read) counts the extra subflows.
    assert r.info_end["subflows"] == n, r.summary()
    msk = [s for s in parse_ss(r.probes[0]["stdout"]) if s.peer_port == 10000]
    assert len(msk) == 1 and msk[0].num("subflows") == n, r.probes[0]["stdout"]
    obs.check("ns1", optional=("MPJoinSynTx",), MPJoinSynAckRx=n, MPJoinSynTx=n)
    obs.check("ns2", MPJoinSynRx=n, MPJoinAckRx=n)
    joins = sorted(e.src for e in obs.wire(MpJoin, variant="syn"))
    assert joins == [f"10.0.{i}.1" for i in range(2, n + 2)]
    assert len(obs.pm("ns1", "SF_ESTABLISHED")) == n


@pytest.mark.parametrize("side", ["client", "server"])
def test_limits_enforced(vm, mp, side):
    """Three subflow endpoints, but one side allows a single extra subflow."""
    mp.pair(paths=4)
    mp.pm("ns1", subflows=1 if side == "client" else 3, endpoints=client_eps(3))
    mp.pm("ns2", subflows=1 if side == "server" else 3)
    limited = "ns1" if side == "client" else "ns2"
    assert pm.limits(vm, limited) == {"add_addr_accepted": 0, "subflows": 1}
    with mp.observe() as obs:
        r = mp.transfer(size=512 << 10, wait_subflows=1)
    assert r.intact, r.summary()
    assert r.info_end["subflows"] == 1, r.summary()
    obs.check("ns2", MPJoinAckRx=1)
    syns = obs.wire(MpJoin, variant="syn")
    # The client never tries past its own limit; the server refuses joins past its
    # limit (6.1 at the SYN, 6.12 at the third ACK, then the client resets them).
    assert len(syns) == (1 if side == "client" else 3), [e.src for e in syns]


def _accepted(vm, ns: str, argvs) -> int:
    """How many of `argvs` succeed before the first one the kernel refuses."""
    n = 0
    for argv in argvs:
        if not vm.run(argv, ns=ns, check=False).ok:
            break
        n += 1
    return n


def test_pm_hard_limits_agree(vm, mp):
    """The in-kernel PM caps both the endpoint count and each limit at one constant
    (MPTCP_PM_ADDR_MAX: 8 on 6.12): as many endpoints are taken as the largest limit, and
    one more of either is refused while the accepted ones stay."""
    mp.pair(paths=1)
    cap = 128  # above any kernel's constant: the loops end at the kernel's refusal
    eps = _accepted(vm, "ns1", (pm.add_argv(pm.ep(f"10.9.{i}.1")) for i in range(cap)))
    assert 8 <= eps < cap and len(pm.endpoints(vm, "ns1")) == eps, eps
    for kind in ("subflows", "add_addr_accepted"):
        top = _accepted(vm, "ns1", (pm.limits_argv(**{kind: i}) for i in range(cap)))
        assert top - 1 == eps, f"limits set {kind} takes up to {top - 1}, endpoints {eps}"
        assert pm.limits(vm, "ns1")[kind] == eps, pm.limits(vm, "ns1")
