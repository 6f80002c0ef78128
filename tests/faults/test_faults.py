"""Real faults in real VMs: each case file runs in its own pytest session.

For every fault the faulty test must fail or error with a one-line cause, the VM must be
replaced, the test after it must pass, and the whole session must end by itself in time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from knit import kernels
from knit.paths import ROOT

CASES = Path(__file__).parent / "cases"
DEADLINE_S = 900  # one session: two TCG boots plus the fault; it must never hang


def qemus_of(art: Path) -> list[int]:
    """Host qemu processes that share `art` with their guest: those of one case session."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"qemu-system" in argv[0] and any(str(art).encode() in a for a in argv):
                found.append(int(d.name))
    return found


def stop_session(proc: subprocess.Popen, art: Path) -> str:
    """Ends a session that overran: SIGINT (knit stops its VMs), then SIGKILL, then any
    qemu of it still alive. Says what had to be killed."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    left = qemus_of(art)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return (f"qemu {left} outlived it and were killed\n" if left else "") + out[-3000:]


def run_case(case: str, tmp: Path, *args: str, deadline: float = DEADLINE_S
             ) -> tuple[subprocess.CompletedProcess, float]:
    art = tmp / "art"
    cmd = [sys.executable, "-m", "pytest", str(CASES / case), "-p", "no:randomly", "-rA",
           "-o", "python_files=case_*.py", "--knit-artifacts", str(art), *args]
    t0 = time.monotonic()
    # A wide terminal: pytest cuts short-summary reasons to the terminal width.
    env = {**os.environ, "COLUMNS": "1000"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: the session hung (stopped after {deadline:.0f} s)\n"
                    + stop_session(proc, art), pytrace=False)
    p = subprocess.CompletedProcess(cmd, proc.returncode, out, "")
    # Every VM of the session is gone with it, stopped (SIGSTOP) ones included.
    assert not qemus_of(art), f"qemu of {case} still running: {qemus_of(art)}"
    return p, time.monotonic() - t0


def outcomes(out: str) -> dict[str, str]:
    """test name -> PASSED/FAILED/ERROR from pytest's -rA short summary."""
    found: dict[str, str] = {}
    for m in re.finditer(r"^(PASSED|FAILED|ERROR) \S+::(\w+)(?:\[[^\]]*\])?", out, re.M):
        # A teardown error lists the test twice (PASSED, then ERROR): the error wins.
        if found.get(m.group(2)) in (None, "PASSED"):
            found[m.group(2)] = m.group(1)
    return found


def cause(out: str, test: str) -> str:
    m = re.search(rf"^(?:FAILED|ERROR) \S+::{test}\S* - (.+)$", out, re.M)
    return m.group(1) if m else ""


@pytest.mark.parametrize("case, why", [
    ("case_panic.py", r"guest channel closed|qemu exited"),
    ("case_frozen_guest.py", r"did not answer"),
    ("case_agent_stops.py", r"did not answer"),
    ("case_qemu_killed.py", r"guest channel closed|VM is unusable"),
    ("case_oom.py", r"kernel fault \(.*(oom|Out of memory|Call Trace)"),
])
def test_vm_fault_is_survived(case, why, tmp_path):
    p, took = run_case(case, tmp_path)
    out = p.stdout + p.stderr
    got = outcomes(out)
    assert got.get("test_fault") in ("FAILED", "ERROR"), out[-3000:]
    assert re.search(why, cause(out, "test_fault")), cause(out, "test_fault")
    assert got.get("test_after") == "PASSED", out[-3000:]
    assert "knit: replacing VM" in out or "VM is unusable" in out or "knit console tail" in out


def test_leftovers_are_caught_and_the_vm_replaced(tmp_path):
    p, _ = run_case("case_leftovers.py", tmp_path)
    out = p.stdout + p.stderr
    got = outcomes(out)
    assert got == {"test_fault_netns": "ERROR", "test_fault_sysctl": "ERROR",
                   "test_after": "PASSED"} or (
        got.get("test_after") == "PASSED" and list(got.values()).count("ERROR") == 2), out[-3000:]
    assert "netns leaked left behind" in out
    assert "sysctl net.ipv4.ip_forward changed: '0' -> '1'" in out


def test_corrupt_image_and_a_kernel_that_never_boots(tmp_path):
    good = kernels.ensure(kernels.default_kernel())
    corrupt = tmp_path / "corrupt" / "bzImage"
    corrupt.parent.mkdir()
    corrupt.write_bytes(good.image.read_bytes()[:4096][::-1])
    # A real kernel whose modules (virtio, 9p) cannot be found: it never mounts a root.
    orphan = tmp_path / "orphan" / "bzImage"
    orphan.parent.mkdir()
    shutil.copy(good.image, orphan)
    p, took = run_case("case_bad_kernels.py", tmp_path, "--kernel", f"path:{corrupt}",
                       "--kernel", f"path:{orphan}", "--kernel", good.name)
    out = p.stdout + p.stderr
    assert re.search(r"ERROR \S+test_fault\[path:\S+corrupt\S*\] - .*is not a bzImage", out), \
        out[-3000:]
    assert re.search(r"(ERROR|FAILED) \S+test_fault\[path:\S+orphan\S*\] - .*did not reach "
                     r"the agent", out), out[-3000:]
    assert re.search(rf"PASSED \S+test_fault\[{re.escape(good.name)}\]", out), out[-3000:]


def test_kernel_reports_fail_the_test_that_caused_them(tmp_path, pytestconfig):
    """A WARN in the test, in the exit of a netns it deleted (cleanup_net runs later, in a
    workqueue), from a timer after it, on the first attempt only, and a leak on a kmemleak
    kernel: under --flake-retries 1 each fails (never flaky) with its trace, and the clean
    test after it passes at once. Runs on this session's --kernel (the leak needs
    src-6.12-debug: `pytest tests/faults -k kernel_reports --kernel src-6.12-debug`)."""
    kernel = [a for k in pytestconfig.getoption("kernel")[:1] for a in ("--kernel", k)]
    # Six boots: the first VM and one after each of the five faults (a KASAN + lockdep
    # kernel takes 46-79 s to boot under TCG, ~1100 s for the whole case).
    p, _ = run_case("case_kernel_faults.py", tmp_path, "--flake-retries", "1", *kernel,
                    deadline=3 * DEADLINE_S)
    out = p.stdout + p.stderr
    recs = {r["nodeid"].split("::")[1].split("[")[0]: r for r in
            json.loads((tmp_path / "art" / "results.json").read_text())["tests"]}
    # faulty test: (its outcome, the function that warned, the clean test that follows it)
    expected = {
        "test_warn_in_test": ("failed", "set_warn+", "test_after_warn_in_test"),
        "test_warn_in_netns_exit": ("failed|error", "knit_fault_net_exit+",
                                    "test_after_warn_in_netns_exit"),
        "test_warn_from_timer_after_the_test": ("error", "later_fn+",
                                                "test_after_warn_from_timer"),
        "test_warn_on_first_attempt_only": ("failed", "set_warn+",
                                            "test_after_warn_on_first_attempt"),
    }
    for test, (outcome, text, after) in expected.items():
        rec = recs[test]
        assert rec["outcome"] in outcome.split("|") and rec["attempts"] == 1, \
            (test, rec, out[-3000:])
        assert text in rec["message"] and rec["faults"][0].startswith("warning "), rec
        assert (recs[after]["outcome"], recs[after]["attempts"]) == ("passed", 1), recs[after]
    leak = recs["test_leak"]
    if leak["outcome"] == "skipped":
        assert "no kmemleak" in leak["message"], leak
    else:
        assert leak["outcome"] == "error" and leak["attempts"] == 1, (leak, out[-3000:])
        # The first line is kmemleak's count; its report, with the stack, is in the error.
        report = re.search(r"ERROR at teardown of test_leak\b.*?\n(.*?)(?=\n[_=]{3})", out, re.S)
        assert leak["faults"][0].startswith("kmemleak ") and report, (leak, out[-3000:])
        assert "unreferenced object" in report[1] and "set_leak+" in report[1], report[1]
        assert (recs["test_after_leak"]["outcome"], recs["test_after_leak"]["attempts"]) == \
            ("passed", 1), recs["test_after_leak"]
