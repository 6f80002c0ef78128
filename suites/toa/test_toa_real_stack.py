"""TOA against real TCP: an ordinary client whose own kernel writes option 254 into the
ACK that completes each handshake (bpf/toa_sockops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB)."""

from __future__ import annotations

import json

import pytest

from knit.vm import VM
from suites.toa.lib.impl import Toa
from suites.toa.lib.net import CLI4, CLIENT_NS, SERVER_NS, SOCKOPS_TOA_ADDR, SRV4, real_topology


@pytest.mark.kernel(min="5.10")
@pytest.mark.kconfig("CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL")
def test_sockops_client_connections_map_to_the_option(vm: VM, topo, toa: Toa,
                                                     toa_sockops: dict) -> None:
    topo(real_topology())
    n, port = 5, 5003
    server = [vm.python, "-m", "suites.toa.lib.server", "--port", str(port),
              "--count", str(n), "--echo", *toa.server_args]
    with vm.spawn(server, ns=SERVER_NS, ready="^listening", ready_timeout=vm.scaled(60)) as srv:
        sent = vm.call("suites.toa.lib.bpf:clients", ns=CLIENT_NS, cgroup=toa_sockops["cgroup"],
                       dst=SRV4, port=port, n=n)
        srv.wait_for("^done$", vm.scaled(30))
    records = [json.loads(line) for line in srv.result.stdout.splitlines() if line[:1] == "{"]
    seen = {r["tag"]: r for r in records}
    assert [c["echo"] for c in sent] == [c["tag"] for c in sent]  # a working TCP stream
    for c in sent:  # the option's address, and the client's own port (the program's choice)
        assert c["local"][0] == CLI4
        assert seen[c["tag"]]["getpeername"] == seen[c["tag"]]["accept"] \
            == [SOCKOPS_TOA_ADDR, c["local"][1]]
    assert vm.call("suites.toa.lib.bpf:written", state=toa_sockops) == n
