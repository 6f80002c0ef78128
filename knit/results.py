"""Test outcomes as records: the JSON results file, the flake history, their summaries.

Pure: the pytest plugin feeds it reports; `knit flakes` and `knit report` read its files.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

OUTCOMES = ("passed", "failed", "error", "skipped", "flaky", "xfailed", "xpassed", "known")


@dataclass
class Record:
    nodeid: str
    test: str                  # nodeid without the kernel parameter: one matrix row
    kernel: str | None
    outcome: str
    duration: float
    kernel_version: str | None = None
    accel: str | None = None
    userspace: str | None = None   # the guest root tree (trixie, bookworm, host)
    message: str = ""
    artifacts: str | None = None
    attempts: int = 1
    when: float = field(default_factory=time.time)
    cases: list[dict] = field(default_factory=list)   # sub-results (e.g. selftest TAP cases)
    cpu_wait_s: float | None = None  # an `exclusive` test's wait for the other workers
    faults: list[str] = field(default_factory=list)  # kernel faults found: "kind fingerprint"
    known: str | None = None   # the known issue its failure matched: "id: reference"


def split_kernel(nodeid: str, kernel: str | None, userspace: str | None = None) -> str:
    """'t.py::test_x[debian-6.12-4]' -> 't.py::test_x[4]': the row, whatever the kernel
    (and the userspace, where the id names it: 'debian-6.12-bookworm')."""
    if not kernel:
        return nodeid
    if userspace and f"{kernel}-{userspace}" in nodeid:
        kernel = f"{kernel}-{userspace}"
    out = re.sub(rf"\[{re.escape(kernel)}-", "[", nodeid)
    out = re.sub(rf"-{re.escape(kernel)}\]", "]", out)
    return out.replace(f"[{kernel}]", "")


def write_results(path: Path, records: list[Record], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "tests": [asdict(r) for r in records]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def boot_summary(path: Path, since: float, session: str | None = None) -> dict[str, dict]:
    """Per kernel: how many VMs this session booted and their boot-to-ready seconds, from
    the pool's boots.jsonl: the lines of `session` where they name one (another session
    may share the file at the same time), else those after `since`."""
    times: dict[str, list[float]] = defaultdict(list)
    lines = path.read_text().splitlines() if path.exists() else []
    for b in (json.loads(ln) for ln in lines if ln.strip()):
        if session and "session" in b:
            mine = b["session"] == session
        else:
            mine = b.get("when", 0) >= since
        if mine:
            us = f", {b['userspace']}" if b.get("userspace") else ""
            times[f"{b['kernel']} ({b['accel']}{us})"].append(b["boot_s"])
    return {k: {"boots": len(v), "median_s": round(statistics.median(v), 1),
                "max_s": round(max(v), 1)} for k, v in sorted(times.items())}


def read_results(path: Path) -> tuple[dict, list[Record]]:
    data = json.loads(path.read_text())
    fields = set(Record.__dataclass_fields__)
    return data.get("meta", {}), [Record(**{k: v for k, v in t.items() if k in fields})
                                  for t in data["tests"]]


def completed(path: Path) -> bool:
    """Whether `path` holds a whole run: pytest exited 0 (all passed) or 1 (tests failed),
    not 2 (interrupted) or worse, which a resumed nightly must run again."""
    try:
        meta = json.loads(path.read_text()).get("meta", {})
    except (OSError, ValueError):
        return False
    return meta.get("exitstatus") in (0, 1)


def append_history(path: Path, records: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in records:
            if r.outcome != "skipped":
                f.write(json.dumps({"nodeid": r.nodeid, "outcome": r.outcome, "when": r.when,
                                    "kernel": r.kernel, "message": r.message[:300]}) + "\n")


def flake_summary(path: Path) -> list[dict]:
    """Per test: runs, fails, flaky, and the last failure, most troubled first."""
    stats: dict[str, dict] = defaultdict(lambda: {"runs": 0, "fails": 0, "flaky": 0,
                                                  "last_failure": None, "last_message": ""})
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        try:
            h = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed run
        s = stats[h["nodeid"]]
        s["runs"] += 1
        if h["outcome"] in ("failed", "error"):
            s["fails"] += 1
            s["last_failure"], s["last_message"] = h["when"], h.get("message", "")
        elif h["outcome"] == "flaky":
            s["flaky"] += 1
    rows = [{"nodeid": k, **v} for k, v in stats.items()]
    rows.sort(key=lambda r: (-(r["fails"] + r["flaky"]), r["nodeid"]))
    return rows
