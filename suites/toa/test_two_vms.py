"""TOA with the option writer and the backend on two kernels: the test's VM plays the
load balancer, whose kernel writes option 254 (bpf/toa_sockops, the address the LB
vouches for: SOCKOPS_TOA_ADDR) into the ACK that completes each handshake; the peer VM
(--peer-kernel) is the backend, running the TOA module built for its kernel or bpf/toa."""

from __future__ import annotations

import json
import posixpath

import pytest

from suites.toa.lib.impl import Toa
from suites.toa.lib.net import CLI4, CLIENT_NS, SERVER_NS, SOCKOPS_TOA_ADDR, SRV4, real_topology

pytestmark = [pytest.mark.multi_vm, pytest.mark.kernel(min="5.10"),
              pytest.mark.kconfig("CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL")]
PORT = 5004


def serve_and_connect(vm, peer, toa: Toa, cgroup: str, n: int) -> tuple[list, dict]:
    """n connections from the LB's client netns, in `cgroup`, to a backend server on the
    peer; returns what the client saw and the server's record of each, by tag."""
    server = [peer.python, "-m", "suites.toa.lib.server", "--port", str(PORT),
              "--count", str(n), "--echo", *toa.server_args]
    with peer.spawn(server, ns=SERVER_NS, ready="^listening",
                    ready_timeout=peer.scaled(60)) as srv:
        sent = vm.call("suites.toa.lib.bpf:clients", ns=CLIENT_NS, cgroup=cgroup, dst=SRV4,
                       port=PORT, n=n)
        srv.wait_for("^done$", peer.scaled(30))
    records = [json.loads(line) for line in srv.result.stdout.splitlines() if line[:1] == "{"]
    return sent, {r["tag"]: r for r in records}


def test_backend_on_the_peer_kernel_sees_the_address_of_the_option(vm, peer, topo,
                                                                    toa_sockops, peer_toa):
    topo(real_topology(server_vm="b"))
    n = 5
    sent, seen = serve_and_connect(vm, peer, peer_toa, toa_sockops["cgroup"], n)
    assert [c["echo"] for c in sent] == [c["tag"] for c in sent]   # a working TCP stream
    for c in sent:  # the option's address, and the client's own port
        assert c["local"][0] == CLI4
        assert seen[c["tag"]]["getpeername"] == seen[c["tag"]]["accept"] \
            == [SOCKOPS_TOA_ADDR, c["local"][1]]
    assert vm.call("suites.toa.lib.bpf:written", state=toa_sockops) == n


@pytest.mark.slow
def test_without_the_option_the_backend_sees_the_balancer(vm, peer, topo, toa_sockops,
                                                          peer_toa):
    """The negative twin of the case above (its positive control): the same clients, but
    outside the sockops program's cgroup, so the LB's kernel writes no option."""
    topo(real_topology(server_vm="b"))
    outside = posixpath.dirname(toa_sockops["cgroup"])
    sent, seen = serve_and_connect(vm, peer, peer_toa, outside, 3)
    assert [seen[c["tag"]]["getpeername"] for c in sent] == [[CLI4, c["local"][1]]
                                                             for c in sent]
    assert vm.call("suites.toa.lib.bpf:written", state=toa_sockops) == 0
