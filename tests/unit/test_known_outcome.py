"""A failure a known issue explains is KNOWN: its own outcome, exit 0; --strict-known fails it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from knit import plugin_report

pytest_plugins = ["pytester"]

RESET = """
def test_reset():
    assert 0, "subflow reset: MPTcpExtDSSNotMatching 1"

def test_other():
    assert 0, "3 != 4"
"""
ISSUE = """
[[issue]]
id = "dss-reset"
reference = "https://example.invalid/dss"
signature = 'MPTcpExtDSSNotMatching [1-9]'
"""


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(test_dss=RESET)
    (pytester.path / "known.toml").write_text(ISSUE)
    art = pytester.path / "art"
    r = pytester.runpytest_subprocess("--knit-artifacts", str(art), "--known-issues",
                                      str(pytester.path / "known.toml"), "--junitxml",
                                      str(pytester.path / "junit.xml"), "-p", "knit.plugin",
                                      "-p", "knit.plugin_report", "-p", "no:randomly",
                                      "-k", "reset", *args)
    [rec] = json.loads((art / "results.json").read_text())["tests"]
    return r, rec


def test_a_known_failure_is_known_and_exits_0(pytester: pytest.Pytester) -> None:
    r, rec = _run(pytester)
    assert r.ret == 0
    assert (rec["outcome"], rec["known"]) == ("known", "dss-reset: https://example.invalid/dss")
    assert rec["message"] == "AssertionError: subflow reset: MPTcpExtDSSNotMatching 1"
    r.stdout.fnmatch_lines(["test_dss.py K*", "KNOWN *test_reset (known issue dss-reset: "
                            "https://example.invalid/dss; failed with: AssertionError: *)",
                            "*1 known*"])
    case = ET.parse(pytester.path / "junit.xml").getroot().find(".//testcase")
    assert case is not None and case.find("failure") is None
    assert "dss-reset" in case.find("skipped").get("message")


def test_strict_known_fails_it_and_keeps_the_reference(pytester: pytest.Pytester) -> None:
    r, rec = _run(pytester, "--strict-known")
    assert r.ret == 1
    assert (rec["outcome"], rec["known"]) == ("failed", "dss-reset: https://example.invalid/dss")
    r.stdout.fnmatch_lines(["*knit known issue*", "dss-reset: https://example.invalid/dss"])


def test_a_failure_no_issue_explains_still_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dss=RESET)
    (pytester.path / "known.toml").write_text(ISSUE)
    r = pytester.runpytest_subprocess("--known-issues", str(pytester.path / "known.toml"),
                                      "--knit-artifacts", str(pytester.path / "art"),
                                      "-p", "knit.plugin", "-p", "knit.plugin_report",
                                      "-p", "no:randomly")
    r.assert_outcomes(failed=1)
    assert r.ret == 1


def test_a_bad_known_issues_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dss=RESET)
    (pytester.path / "known.toml").write_text('[[issue]]\nid = "x"\nreference = "r"\n')
    r = pytester.runpytest_subprocess("--known-issues", str(pytester.path / "known.toml"),
                                      "-p", "knit.plugin", "-p", "knit.plugin_report")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*known issues: x: give a fingerprint or a signature"])


def _report(outcome: str, when: str = "call", **attrs) -> pytest.TestReport:
    rep = pytest.TestReport("t.py::t", ("t.py", 1, "t"), {}, outcome, None, when)
    rep.__dict__.update(attrs)
    return rep


@pytest.mark.parametrize(("rep", "outcome"), [
    (_report("skipped", knit_known=True, wasxfail="known issue x"), "known"),
    (_report("skipped", "teardown", knit_known=True, wasxfail="known issue x"), "known"),
    (_report("skipped", wasxfail="reason"), "xfailed"),
    (_report("failed"), "failed"),
    (_report("failed", "teardown"), "error"),
    (_report("passed", knit_flaky=True), "flaky"),
    (_report("passed", "setup"), None),
])
def test_report_outcomes(rep, outcome):
    assert plugin_report._outcome(rep) == outcome


def test_known_ranks_over_a_pass_and_under_a_failure():
    rank = plugin_report._rank
    assert rank("flaky") < rank("known") < rank("failed") < rank("error")


def test_a_signature_is_searched_in_the_message_not_the_quoted_source():
    rep = _report("failed", longrepr="    def test_x():\n>       assert counters['MPTcpExtDSS"
                                     "NotMatching'] == 0\nE       assert 3 == 0\n")
    assert plugin_report.failure_text(rep) == "      assert 3 == 0"
