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


PM_ADDR_MAX = 8  # net/mptcp's MPTCP_PM_ADDR_MAX up to 6.12; debian-7.3 took 128+ endpoints


def _accepted(vm, ns: str, argvs) -> int:
    """How many of `argvs` succeed before the first one the kernel refuses."""
    n = 0
    for argv in argvs:
        if not vm.run(argv, ns=ns, check=False).ok:
            break
        n += 1
    return n


@pytest.mark.kernel(max="6.12.999")
def test_pm_hard_limits(vm, mp):
    """The in-kernel PM takes PM_ADDR_MAX endpoints and limits up to PM_ADDR_MAX; one more
    of either is refused, and what was accepted stays."""
    mp.pair(paths=1)
    cap = 4 * PM_ADDR_MAX  # the loops end at the kernel's refusal, well before this
    eps = _accepted(vm, "ns1", (pm.add_argv(pm.ep(f"10.9.{i}.1")) for i in range(cap)))
    assert eps == PM_ADDR_MAX == len(pm.endpoints(vm, "ns1")), eps
    for kind in ("subflows", "add_addr_accepted"):
        top = _accepted(vm, "ns1", (pm.limits_argv(**{kind: i}) for i in range(cap))) - 1
        assert top == PM_ADDR_MAX, f"limits set {kind} takes up to {top}"
        assert pm.limits(vm, "ns1")[kind] == PM_ADDR_MAX, pm.limits(vm, "ns1")
