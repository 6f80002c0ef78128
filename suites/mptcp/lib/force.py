"""Host side: the ways to force an unmodified program onto MPTCP, as argv prefixes.

    Mptcpize()          `mptcpize run CMD` (mptcpd's LD_PRELOAD library; any MPTCP kernel,
                        not for static binaries)
    Mptcpify(vm, obj)   bpf/mptcpify on update_socket_protocol (Linux >= 6.6), deployed with
                        `knit mptcpify attach --cgroup DIR [--comm NAME]` in the guest;
                        commands run in DIR through cgroup.IN_CGROUP

`forced` is an iperf3 command (its argv up to the program) that gets MPTCP, `control` one
that must keep TCP (outside the cgroup, or the same binary under another name when scoped
by --comm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from knit.vm import VM
from suites.mptcp.lib import cgroup


@dataclass
class Mptcpize:
    name: str = "mptcpize"
    forced: list[str] = field(default_factory=lambda: ["mptcpize", "run", "iperf3"])
    control: list[str] = field(default_factory=lambda: ["iperf3"])

    def stop(self) -> None:
        pass


class Mptcpify:
    """bpf/mptcpify attached in the guest for one test (stop() detaches it)."""

    name = "update_socket_protocol"

    def __init__(self, vm: VM, obj: str, comm: str | None = None,
                 program: str = "iperf3") -> None:
        self.vm, self.comm = vm, comm
        self.state = vm.call(cgroup.scratch)
        self.cmd = [vm.python, "-m", "knit.mptcpify", "mptcpify"]
        try:
            vm.run([*self.cmd, "attach", "--cgroup", self.state["cgroup"], "--pin",
                    self.state["pin"], "--obj", obj, *(["--comm", comm] if comm else [])],
                   timeout=vm.scaled(60))
        except Exception:
            vm.call(cgroup.remove, state=self.state)
            raise
        inside = [*cgroup.IN_CGROUP, self.state["cgroup"]]
        self.forced = [*inside, program]
        if comm:
            # The same binary, exec'd under another name, in the same cgroup.
            other = vm.call(cgroup.alias, state=self.state, program=program,
                            name=f"{program}-tcp")
            self.control = [*inside, other]
        else:
            self.control = [program]              # the same binary, outside the cgroup

    def stats(self) -> dict[str, int]:
        return json.loads(self.vm.run([*self.cmd, "stats", "--pin", self.state["pin"]]).stdout)

    def stop(self) -> None:
        if self.vm.dirty:
            return
        self.vm.run([*self.cmd, "detach", "--pin", self.state["pin"]])
        self.vm.call(cgroup.remove, state=self.state)
