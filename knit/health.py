"""Kernel health oracle: faults in new kernel log lines, and leftovers against a baseline."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Each kind of kernel report by the line that starts it, most specific first (the first
# match names the kind). The texts are the kernel's own: lib/bug.c, kernel/panic.c,
# arch/x86/kernel/dumpstack.c, mm/kasan/report.c, lib/ubsan.c, kernel/locking/lockdep.c,
# kernel/rcu/tree_stall.h, kernel/hung_task.c, kernel/watchdog.c, lib/refcount.c,
# lib/list_debug.c, lib/ref_tracker.c, mm/kmemleak.c.
KINDS: tuple[tuple[str, str], ...] = (
    ("panic", r"Kernel panic - not syncing"),
    ("kasan", r"\bKASAN: "),
    ("ubsan", r"\bUBSAN: "),
    ("lockdep", r"WARNING: (?:possible circular locking dependency|possible recursive locking"
                r"|inconsistent lock state|possible irq lock inversion|.*-safe -> .*-unsafe lock"
                r" order|suspicious RCU usage|bad unlock balance|held lock freed"
                r"|lock held when returning to user space)|INFO: trying to register non-static"
                r" key"),
    ("rcu-stall", r"INFO: \S+ (?:detected (?:expedited )?stalls|self-detected stall)"),
    ("hung-task", r"INFO: task .+ blocked for more than \d+ seconds"),
    ("soft-lockup", r"BUG: soft lockup"),
    ("hard-lockup", r"Watchdog detected hard LOCKUP"),
    ("refcount", r"refcount_t: "),
    ("list-corruption", r"list_(?:add|del) corruption|list_add double add"),
    ("ref-tracker", r"ref_tracker: .* has \d+/\d+ users at"),
    ("kmemleak", r"unreferenced object 0x|kmemleak: \d+ new suspected memory leak"),
    ("gpf", r"general protection fault"),
    ("oops", r"\bOops\b|: [0-9a-f]{4} \[#\d+\]"),  # die(): "invalid opcode: 0000 [#1] SMP"
    ("bug", r"\bBUG: |kernel BUG at "),
    ("warning", r"WARNING:"),
)
_KIND_RX = [(kind, re.compile(rx)) for kind, rx in KINDS]
# A line that starts a new report (so ends the trace of the previous one).
HEADER_RX = re.compile("|".join(f"(?:{rx})" for _, rx in KINDS))
# A bare stack dump is a finding too, but it is part of the report around it.
FAULT_RX = re.compile(rf"{HEADER_RX.pattern}|Call Trace")
# Expected when knit loads its own out-of-tree modules (see DESIGN.md).
BENIGN_RX = re.compile(r"loading out-of-tree module taints kernel|module verification failed")
END_RX = re.compile(r"---\[ end trace|---\[ end Kernel panic|^=+\s*$")  # KASAN, UBSAN: ====
TRACE_LINES = 100
# A report often opens with more than one header ("refcount_t: ..." then "WARNING: CPU..",
# "BUG: unable to handle page fault" then "Oops: 0000 [#1]"): a header this close to the
# start, before any stack frame, belongs to the same report.
LEAD_LINES = 6
FINGERPRINT_FRAMES = 5

# How the agent marks a record written by userspace (facility != kern) to /dev/kmsg.
USER_MARK = "(userspace) "
PREFIX_RX = re.compile(r"^\[\s*\d+\.\d+\](?:\[\s*[CT]\d+\])? ?")  # "[  49.18][ T12] "
FRAME_RX = re.compile(r"^\s*(\? )?(?:\[<[0-9a-f]+>\] )?(?:RIP: [0-9a-f]{4}:)?"
                      r"([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
# The reporting machinery's own frames: the same in every report, so no part of its identity.
REPORTING_FRAMES = frozenset({
    "dump_stack", "dump_stack_lvl", "__dump_stack", "show_stack", "panic", "__warn",
    "warn_slowpath_fmt", "__warn_printk", "report_bug", "handle_bug", "exc_invalid_op",
    "asm_exc_invalid_op", "kasan_report", "print_report", "ubsan_epilogue", "lock_acquire",
    "__lock_acquire", "validate_chain", "check_prev_add", "check_noncircular",
    "print_circular_bug", "lockdep_rcu_suspicious"})


def text(line: str) -> str:
    """A kernel log line without its timestamp (and caller id) prefix."""
    return PREFIX_RX.sub("", line)


def kind_of(line: str) -> str:
    """The kind of report a line starts ('warning', 'kasan', ...), or 'call-trace'."""
    return next((kind for kind, rx in _KIND_RX if rx.search(line)), "call-trace")


def frames(lines: list[str]) -> list[str]:
    """Function names of the reliable stack frames in `lines`, in order: offsets, addresses,
    module names and '?' frames dropped, compiler suffixes (.constprop.0, .isra.0) cut."""
    out = []
    for line in lines:
        m = FRAME_RX.match(text(line))
        name = m.group(2).split(".")[0] if m and not m.group(1) else ""
        if name and name not in REPORTING_FRAMES:
            out.append(name)
    return out


@dataclass(frozen=True)
class Fault:
    first_line: str
    trace: str

    @property
    def kind(self) -> str:
        return kind_of(self.first_line)

    @property
    def signature(self) -> str:
        """The kind and the first frames (as NIPA's crash fingerprint); with no frames,
        the first line with its numbers and addresses blanked."""
        top = frames(self.trace.splitlines())[:FINGERPRINT_FRAMES]
        what = ":".join(top) or re.sub(r"0x[0-9a-f]+|[0-9a-f]{8,}|\d+", "N",
                                       text(self.first_line).strip())
        return f"{self.kind}:{what}"

    @property
    def fingerprint(self) -> str:
        """A short hash of the signature: the same bug gives the same one on every run."""
        return hashlib.sha1(self.signature.encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return (f"kernel fault ({self.kind}, fingerprint {self.fingerprint}): "
                f"{self.first_line.strip()}\n{self.trace}")


def _unescape(lines: list[str]) -> list[str]:
    # /dev/kmsg gives a multi-line record (ref_tracker's stacks) as one line, '\n' as \x0a.
    out = []
    for line in lines:
        parts = line.split("\\x0a")
        out += [p for p in parts if p] if len(parts) > 1 else parts
    return out


def _report_end(lines: list[str], i: int) -> int:
    """The last line of the report that starts at line i."""
    kind, end, framed = kind_of(lines[i]), i, False
    while end < len(lines) - 1 and end - i < TRACE_LINES and not (
            end > i and END_RX.search(text(lines[end]))):
        framed = framed or bool(frames([lines[end]]))
        nxt = lines[end + 1]
        if HEADER_RX.search(nxt) and (framed or end + 1 - i > LEAD_LINES
                                      or kind_of(nxt) in ("panic", kind)):
            break
        end += 1
    return end


def scan(lines: list[str]) -> list[Fault]:
    """Faults in kernel log lines, each with the trace that follows it."""
    lines = [ln for ln in _unescape(lines) if not text(ln).startswith(USER_MARK)]
    faults, i = [], 0
    while i < len(lines):
        line = lines[i]
        if FAULT_RX.search(line) and not BENIGN_RX.search(line):
            end = _report_end(lines, i)
            faults.append(Fault(line, "\n".join(lines[i:end + 1])))
            i = end + 1
        else:
            i += 1
    return faults


def leftovers(before: dict, after: dict, resident: set[str] | frozenset[str] = frozenset()
              ) -> list[str]:
    """What a test left behind: netns, out-of-tree modules, changed init-netns sysctls.

    In-tree modules that the kernel autoloads (veth, sch_netem, tipc...) are not
    leftovers: a test cannot avoid them and unloading them is not always possible. Nor
    are the `resident` modules, which a suite keeps loaded for the VM's life on purpose.
    """
    out = [f"netns {n} left behind" for n in sorted(set(after["netns"]) - set(before["netns"]))]
    for mod, taint in sorted(after["modules"].items()):
        if mod not in before["modules"] and mod not in resident and "O" in taint:
            out.append(f"out-of-tree module {mod} left loaded")
    for key, value in sorted(after["sysctl"].items()):
        if key in before["sysctl"] and before["sysctl"][key] != value:
            out.append(f"sysctl {key} changed: {before['sysctl'][key]!r} -> {value!r}")
    return out
