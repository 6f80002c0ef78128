"""--flake-retries: a pass on retry is FLAKY and keeps why the first attempt failed."""

from __future__ import annotations

import json

import pytest

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
from knit.plugin_report import RETRIED_WITHIN

@pytest.fixture
def health():
    yield
    f = Path(__file__).with_name("runs")
    f.write_text(f.read_text() + "x" if f.exists() else "x")
    assert len(f.read_text()) > 1, "kernel health: a warning in dmesg"

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
