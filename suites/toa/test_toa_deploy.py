"""bpf/toa deployed the way bpf/toa/README.md tells a user to: `knit toa attach` (bpftool
commands, pins in a bpffs, programs on the service's cgroup), `knit toa stats`,
`knit toa detach`. kmod/toa's deployment is insmod: the other cases cover it."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from knit import kbuild
from knit.vm import VM
from suites.toa.lib import bpf as toa_bpf
from suites.toa.lib.impl import selected
from suites.toa.lib.net import CLI4, Conn, ToaNet, topology
from suites.toa.lib.wire import toa

A = ("203.0.113.7", 4242)


def test_knit_toa_attach_stats_detach(request: pytest.FixtureRequest, vm: VM, topo,
                                      toa_bpf_obj: kbuild.Built, cleanup: ExitStack) -> None:
    if "bpf" not in selected(request.config):
        pytest.skip("deploys bpf/toa, which --toa-impl kmod leaves out")
    topo(topology())
    st = vm.call(toa_bpf.scratch)
    cleanup.callback(vm.call, toa_bpf.detach_toa, state=st)  # also when an assert fails
    knit_toa = [vm.python, "-m", "knit.toa_deploy", "toa"]
    vm.run([*knit_toa, "attach", "--cgroup", st["cgroup"], "--pin", st["pin"],
            "--obj", str(toa_bpf_obj.path), "--allow", f"{CLI4}/32"], timeout=vm.scaled(60))
    (seen,) = ToaNet(vm, st).connect(Conn(ack_opts=toa(*A)))
    assert seen.accept == seen.getpeername == A
    stats = json.loads(vm.run([*knit_toa, "stats", "--pin", st["pin"]]).stdout)
    assert (stats["syn_recv_sock_toa"], stats["getname_toa_ok"]) == (1, 2)
    vm.run([*knit_toa, "detach", "--cgroup", st["cgroup"], "--pin", st["pin"]])
    assert vm.call(toa_bpf.cgroup_progs, state=st) == []
