"""--flake-retries: a pass on retry is FLAKY and keeps why the first attempt failed; a
kernel fault is never retried, state left behind is."""

from __future__ import annotations

import json

import pytest

from knit import health

pytest_plugins = ["pytester"]

FLIPS = """
from pathlib import Path

def test_flips():
    f = Path(__file__).with_name("count")
    n = int(f.read_text()) if f.exists() else 0
    f.write_text(str(n + 1))
    assert n >= 1, "first attempt fails on purpose"
"""


def test_pass_on_retry_is_flaky_with_the_first_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_flips=FLIPS)
    art = pytester.path / "art"
    r = pytester.runpytest_subprocess("--flake-retries", "1", "--knit-artifacts", str(art),
                                      "-p", "knit.plugin", "-p", "knit.plugin_report",
                                      "-p", "no:randomly")
    r.stdout.fnmatch_lines(["FLAKY *test_flips (passed on attempt 2; first failure: "
                            "AssertionError: first attempt fails on purpose)"])
    [rec] = json.loads((art / "results.json").read_text())["tests"]
    assert (rec["outcome"], rec["attempts"]) == ("flaky", 2)
    assert rec["message"] == "AssertionError: first attempt fails on purpose"


WITHIN = """
from pathlib import Path
from knit.plugin_report import RETRIED_WITHIN

def test_retries_its_parts(request):
    f = Path(__file__).with_name("runs")
    f.write_text(f.read_text() + "x" if f.exists() else "x")
    request.node.user_properties.append((RETRIED_WITHIN, "case 2 b failed, 1 in all"))
    assert OUTCOME, "its parts failed again"
"""


def _within(pytester: pytest.Pytester, outcome: bool) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(test_within=WITHIN.replace("OUTCOME", str(outcome)))
    art = pytester.path / "art"
    r = pytester.runpytest_subprocess("--flake-retries", "2", "--knit-artifacts", str(art),
                                      "-p", "knit.plugin", "-p", "knit.plugin_report",
                                      "-p", "no:randomly")
    [rec] = json.loads((art / "results.json").read_text())["tests"]
    return r, rec


def test_a_test_that_retried_its_parts_and_passed_is_flaky(pytester: pytest.Pytester) -> None:
    r, rec = _within(pytester, True)
    r.stdout.fnmatch_lines(["FLAKY *test_retries_its_parts (passed on a retry of its failed "
                            "parts; first failure: case 2 b failed, 1 in all)"])
    assert (rec["outcome"], rec["attempts"]) == ("flaky", 1)


def test_a_test_that_retried_its_parts_is_not_rerun_whole(pytester: pytest.Pytester) -> None:
    _, rec = _within(pytester, False)
    assert (rec["outcome"], rec["attempts"]) == ("failed", 1)
    assert (pytester.path / "runs").read_text() == "x"


TEARDOWN = """
from pathlib import Path
import pytest

from knit import health
from knit.plugin_report import RETRIED_WITHIN

@pytest.fixture
def health():
    yield
    f = Path(__file__).with_name("runs")
    f.write_text(f.read_text() + "x" if f.exists() else "x")
    assert len(f.read_text()) > 1, "test left state behind: netns ns1 left behind"

def test_retries_its_parts(request, health):
    request.node.user_properties.append((RETRIED_WITHIN, "case 2 b failed, 1 in all"))
"""


def test_a_teardown_failure_still_gets_a_whole_rerun(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_teardown=TEARDOWN)
    art = pytester.path / "art"
    pytester.runpytest_subprocess("--flake-retries", "2", "--knit-artifacts", str(art),
                                  "-p", "knit.plugin", "-p", "knit.plugin_report",
                                  "-p", "no:randomly")
    [rec] = json.loads((art / "results.json").read_text())["tests"]
    assert (rec["outcome"], rec["attempts"]) == ("flaky", 2)
    assert (pytester.path / "runs").read_text() == "xx"


WARN = ["[   61.371206] WARNING: CPU: 1 PID: 312 at net/mptcp/protocol.c:1022 "
        "__mptcp_clean_una+0x2f1/0x330",
        "[   61.373100] Call Trace:",
        "[   61.373900]  __mptcp_clean_una_wakeup+0x2b/0x50"]
# A test on a stand-in VM that gives the health checks scripted kernel log lines and state:
# the real checks of knit.plugin (_check_kmsg after the call, _check_after at teardown) run.
FAKE_VM = '''
from pathlib import Path
from types import SimpleNamespace

import pytest

from knit import health

from knit.plugin import VM_KEY, VmInUse, _check_after

RUNS = Path(__file__).with_name("runs")
WARN = WARN_LINES
CLEAN = {"netns": [], "modules": {}, "sysctl": {}}


class FakeVM:
    def __init__(self, logs, state):
        self.logs, self.left, self.dirty, self.console = list(logs), state, "", "console"
        self.resident_modules: set[str] = set()
        self.cfg = SimpleNamespace(kernel=SimpleNamespace(name="fake", version="6.12.0"),
                                   accel="tcg")

    def kmsg(self, after):
        return after + 1, self.logs.pop(0) if self.logs else []

    def state(self):
        return self.left

    def scaled(self, seconds):
        return seconds

    def call(self, target, **kwargs):  # the settle step: nothing to wait for here
        return {"kmemleak": None}

    def console_tail(self, n=50):
        return "console tail"


class FakePool:
    kmsg_seq = {}
    baseline = {"fake": CLEAN}


@pytest.fixture
def fake_vm(request):
    RUNS.write_text(RUNS.read_text() + "x" if RUNS.exists() else "x")
    first = RUNS.read_text() == "x"
    request.node.stash[VM_KEY] = VmInUse("fake", FakeVM(*SCRIPT), FakePool())
    yield
    _check_after(request.node)


def test_on_fake_vm(fake_vm):
    pass
'''.replace("WARN_LINES", repr(WARN))
# SCRIPT: (kernel log lines of each check: after the call, at teardown; state at teardown)
IN_CALL = "([WARN] if first else [], CLEAN)"
AT_TEARDOWN = "([[], WARN] if first else [], CLEAN)"
LEFTOVER = "([], {**CLEAN, 'netns': ['ns1']} if first else CLEAN)"


def _fake_run(pytester: pytest.Pytester, script: str, *args: str) -> tuple[pytest.RunResult,
                                                                            dict]:
    pytester.makepyfile(test_fake=FAKE_VM.replace("SCRIPT", script))
    art = pytester.path / "art"
    r = pytester.runpytest_subprocess("--flake-retries", "2", "--knit-artifacts", str(art),
                                      "-p", "knit.plugin", "-p", "knit.plugin_report",
                                      "-p", "no:randomly", *args)
    [rec] = json.loads((art / "results.json").read_text())["tests"]
    return r, rec


def test_a_kernel_fault_in_the_test_is_never_retried(pytester: pytest.Pytester) -> None:
    r, rec = _fake_run(pytester, IN_CALL)
    assert (rec["outcome"], rec["attempts"]) == ("failed", 1)
    assert (pytester.path / "runs").read_text() == "x"
    assert "kernel fault (warning, fingerprint" in rec["message"]
    assert len(rec["faults"]) == 1 and rec["faults"][0].startswith("warning ")
    r.stdout.fnmatch_lines(["*__mptcp_clean_una_wakeup+0x2b/0x50*"])  # with its trace
    assert r.ret == 1


def test_a_kernel_fault_at_teardown_is_never_retried(pytester: pytest.Pytester) -> None:
    r, rec = _fake_run(pytester, AT_TEARDOWN)
    assert (rec["outcome"], rec["attempts"]) == ("error", 1)
    assert (pytester.path / "runs").read_text() == "x"
    assert r.ret == 1


def test_state_left_behind_is_retried(pytester: pytest.Pytester) -> None:
    _, rec = _fake_run(pytester, LEFTOVER)
    assert (rec["outcome"], rec["attempts"]) == ("flaky", 2)
    assert rec["message"].startswith("knit.plugin.KernelFault: test left state behind")
    assert rec["faults"] == []


def test_a_known_kernel_fault_is_known_and_not_retried(pytester: pytest.Pytester) -> None:
    [fault] = health.scan(WARN)
    issues = pytester.path / "known.toml"
    issues.write_text(f'[[issue]]\nid = "w"\nreference = "a text"\n'
                      f'fingerprint = ["{fault.fingerprint}"]\n')
    r, rec = _fake_run(pytester, IN_CALL, "--known-issues", str(issues))
    assert (rec["outcome"], rec["attempts"], rec["known"]) == ("known", 1, "w: a text")
    assert r.ret == 0
