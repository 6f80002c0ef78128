"""What each TOA costs per connection, measured in one VM against a baseline without TOA:
1000 concurrent connections, each with its own option, opened by the raw client and
recorded by the server (accept, getpeername, getsockname), then getpeername() timed over
all of them. Rounds alternate none/kmod/bpf so drift of the emulator hits all alike; a last
bpf round with kernel.bpf_stats_enabled gives the programs' own run time."""

from __future__ import annotations

import pytest

from knit import kbuild
from knit.vm import VM
from suites.toa.lib.impl import IMPLS, NONE, bpf_attached, overhead, selected, summarize
from suites.toa.lib.net import topology

N, ROUNDS = 1000, 2


@pytest.mark.slow
def test_per_connection_overhead_of_each_implementation(
        request: pytest.FixtureRequest, vm: VM, topo, toa_ko: kbuild.Built,
        toa_bpf_obj: kbuild.Built) -> None:
    if selected(request.config) != list(IMPLS):
        pytest.skip("needs both TOA implementations in one run: --toa-impl all")
    topo(topology())
    runs: dict[str, list[dict]] = {"none": [], "kmod": [], "bpf": []}
    for _ in range(ROUNDS):
        runs["none"].append(overhead(vm, NONE, N))
        with kbuild.loaded(vm, toa_ko):
            runs["kmod"].append(overhead(vm, {"kind": "kmod", "module": toa_ko.name}, N))
        with bpf_attached(vm, toa_bpf_obj) as state:
            runs["bpf"].append(overhead(vm, state, N))
    with bpf_attached(vm, toa_bpf_obj) as state:
        vm.call("suites.toa.lib.bpf:bpf_stats", enabled=True)
        try:
            overhead(vm, state, N)
            bpf_ns = vm.call("suites.toa.lib.bpf:prog_runtime", state=state)
        finally:
            vm.call("suites.toa.lib.bpf:bpf_stats", enabled=False)
    # Every run handled all N; only the TOA runs reported the options' addresses.
    assert {k: {(r["n"], r["mapped"]) for r in v} for k, v in runs.items()} == {
        "none": {(N, 0)}, "kmod": {(N, N)}, "bpf": {(N, N)}}
    request.node.user_properties.append(("toa_overhead", summarize(runs, bpf_ns, N)))
