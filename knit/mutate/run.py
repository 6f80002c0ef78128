"""Run a pytest selection against one built mutant, in a child pytest of the checkout, and
read its results.json. The child's output goes to a log file beside its artifacts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from knit.paths import ROOT

# Per suite: what a mutant is judged by when the user names no selection. Two-VM cases
# are left out (a second guest per mutant doubles the boot cost on a 2-core host), and
# the slow ones (no --nightly). MPTCP mutants are judged apart by the upstream selftest
# items their catalogue entry names (upstream_selection).
UPSTREAM = "suites/upstream/test_mptcp_selftests.py"
DEFAULT_SELECTION = {
    "toa": ["suites/toa", "-m", "not multi_vm"],
    "tipc": ["suites/tipc", "-m", "not multi_vm"],
    "mptcp": ["suites/mptcp", "-m", "not multi_vm and not slow"],
}


def upstream_selection(items: list[str]) -> list[str]:
    """pytest arguments for these upstream items (mptcp_join-<group>, script stems).
    Item ids end in -<kernel>, so "<item>-" names one item exactly: mptcp_join-add- is
    not mptcp_join-add_addr_ports, mptcp_connect- not mptcp_connect_checksum."""
    return [UPSTREAM, "--nightly", "-k", " or ".join(f"{i}-" for i in sorted(items))]


@dataclass(frozen=True)
class Run:
    tests: list[dict]     # results.json records
    rc: int               # pytest's exit code
    seconds: float
    log: Path


def pytest(args: list[str], kernel: str, out: Path, workers: int = 1,
           timeout: float = 3600) -> Run:
    """`pytest ARGS --kernel K -n WORKERS` from the checkout, results and artifacts in
    `out`; a timeout kills it and counts as whatever results it wrote (none: invalid)."""
    out.mkdir(parents=True, exist_ok=True)
    res = out / "results.json"
    res.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pytest", *args, "--kernel", kernel, "-n", str(workers),
            "--knit-results", str(res), "--knit-artifacts", str(out / "artifacts"),
            "-p", "no:randomly", "-q"]
    log = out / "pytest.log"
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write(" ".join(argv) + "\n")
        f.flush()
        p = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = -1
            f.write(f"\nknit mutate: pytest timed out after {timeout:.0f}s\n")
        finally:
            # Stopped (timeout, Ctrl-C, SIGTERM): SIGINT lets the child pytest power its
            # VMs off; killing our process group alone left a guest running (seen once).
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
    tests = json.loads(res.read_text())["tests"] if res.exists() else []
    return Run(tests, rc, round(time.monotonic() - t0, 1), log)
