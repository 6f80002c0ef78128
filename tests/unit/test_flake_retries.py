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
