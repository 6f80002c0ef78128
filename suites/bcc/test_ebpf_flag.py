"""--ebpf (bcc python tools) prints the BPF program, with the requested filters in it, and
exits 0 without compiling it: so it works on every kernel, 6.12 included."""

from __future__ import annotations

import pytest

from knit.kernels import Kernel
from knit.vm import VM
from suites.bcc.lib import tools

# Per tool: its arguments, and what its program must hold (probes the tool attaches and the
# filter the arguments ask for).
CASES = {
    "tcptracer": (["-p", "4242"], ["trace_connect_v4_entry", "trace_accept_return",
                                   "trace_close_entry", "pid >> 32 != 4242"]),
    "solisten": (["-p", "4242"], ["listen_evt", "evt.pid != 4242"]),
    "softirqs": ([], ["TRACEPOINT_PROBE(irq, softirq_entry)",
                      "TRACEPOINT_PROBE(irq, softirq_exit)"]),
}


@pytest.mark.parametrize("tool", sorted(CASES))
def test_ebpf_prints_the_program_and_exits_0(vm: VM, knit_kernel: Kernel, tool: str) -> None:
    if not tools.installed(tool, "python", vm.cfg.userspace):
        pytest.skip(f"{tools.binary(tool, 'python')} missing in the {vm.cfg.userspace.name} "
                    "userspace")
    args, wanted = CASES[tool]
    r = tools.run_once(vm, knit_kernel, tool, "python", ["--ebpf", *args], timeout=vm.scaled(30))
    assert r.rc == 0, r.stderr
    missing = [w for w in wanted if w not in r.stdout]
    assert not missing, f"{tool} --ebpf program lacks {missing}:\n{r.stdout[:2000]}"
