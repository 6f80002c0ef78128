"""Kernel health oracle: faults in new kernel log lines, and leftovers against a baseline."""

from __future__ import annotations

import re
from dataclasses import dataclass

FAULT_RX = re.compile(
    r"Oops|BUG:|WARNING:|Call Trace|KASAN|kmemleak|UBSAN|Kernel panic|"
    r"general protection fault|soft lockup|hung_task|rcu_sched detected stall|"
    r"unreferenced object")
# Expected when knit loads its own out-of-tree modules (see DESIGN.md).
BENIGN_RX = re.compile(r"loading out-of-tree module taints kernel|module verification failed")
# A line that starts a new report (so ends the trace of the previous one).
HEADER_RX = re.compile(r"Oops|BUG:|WARNING:|KASAN|UBSAN|Kernel panic|general protection fault|"
                       r"soft lockup|hung_task|unreferenced object")
END_RX = re.compile(r"---\[ end trace|---\[ end Kernel panic")
TRACE_LINES = 60


@dataclass(frozen=True)
class Fault:
    first_line: str
    trace: str

    def __str__(self) -> str:
        return f"kernel fault: {self.first_line.strip()}\n{self.trace}"


def scan(lines: list[str]) -> list[Fault]:
    """Faults in kernel log lines, each with the trace that follows it."""
    faults, i = [], 0
    while i < len(lines):
        line = lines[i]
        if FAULT_RX.search(line) and not BENIGN_RX.search(line):
            end = i
            while (end < len(lines) - 1 and end - i < TRACE_LINES
                   and not END_RX.search(lines[end]) and not HEADER_RX.search(lines[end + 1])):
                end += 1
            faults.append(Fault(line, "\n".join(lines[i:end + 1])))
            i = end + 1
        else:
            i += 1
    return faults


def leftovers(before: dict, after: dict) -> list[str]:
    """What a test left behind: netns, out-of-tree modules, changed init-netns sysctls.

    In-tree modules that the kernel autoloads (veth, sch_netem, tipc...) are not
    leftovers: a test cannot avoid them and unloading them is not always possible.
    """
    out = [f"netns {n} left behind" for n in sorted(set(after["netns"]) - set(before["netns"]))]
    for mod, taint in sorted(after["modules"].items()):
        if mod not in before["modules"] and "O" in taint:
            out.append(f"out-of-tree module {mod} left loaded")
    for key, value in sorted(after["sysctl"].items()):
        if key in before["sysctl"] and before["sysctl"][key] != value:
            out.append(f"sysctl {key} changed: {before['sysctl'][key]!r} -> {value!r}")
    return out
