"""Results, flake history, the HTML matrix and the KCIDB export (validated by kcidb-io)."""

import json

import pytest

from knit import report, results
from knit.results import Record


def rec(nodeid, kernel, outcome, **kw):
    return Record(nodeid=nodeid, test=results.split_kernel(nodeid, kernel), kernel=kernel,
                  outcome=outcome, duration=1.5, kernel_version=f"{kernel}-v", accel="tcg", **kw)


RECORDS = [
    rec("suites/mptcp/test_a.py::test_x[debian-6.1-4]", "debian-6.1", "passed"),
    rec("suites/mptcp/test_a.py::test_x[debian-6.12-4]", "debian-6.12", "failed",
        message="assert 3 == 4", artifacts="/tmp/art/x"),
    rec("tests/vm/test_b.py::test_y[debian-6.12]", "debian-6.12", "flaky", attempts=2),
    rec("tests/vm/test_b.py::test_y[debian-6.1]", "debian-6.1", "skipped",
        message="CONFIG_TIPC not set in debian-6.1"),
]


def test_split_kernel_gives_one_row_per_test_whatever_the_kernel():
    assert RECORDS[0].test == RECORDS[1].test == "suites/mptcp/test_a.py::test_x[4]"
    assert RECORDS[2].test == "tests/vm/test_b.py::test_y"


def test_matrix_html_has_every_cell_and_links(tmp_path):
    out = report.html_report(RECORDS, tmp_path / "report.html")
    page = out.read_text()
    assert page.count("<tr>") == 2 + 2  # header, totals, two tests
    assert "FLAKY ×2" in page and "FAILED" in page and "title='assert 3 == 4'" in page
    assert "art/x'>artifacts</a>" in page


def test_results_round_trip_and_flake_history(tmp_path):
    results.write_results(tmp_path / "r.json", RECORDS, {"k": 1})
    meta, back = results.read_results(tmp_path / "r.json")
    assert meta == {"k": 1} and back == RECORDS
    hist = tmp_path / "h.jsonl"
    results.append_history(hist, RECORDS)
    results.append_history(hist, [rec(RECORDS[1].nodeid, "debian-6.12", "passed")])
    with open(hist, "a") as f:
        f.write('{"nodeid": "cut sho')  # a run killed mid-write must not break the summary
    rows = {r["nodeid"]: r for r in results.flake_summary(hist)}
    assert rows[RECORDS[1].nodeid]["runs"] == 2 and rows[RECORDS[1].nodeid]["fails"] == 1
    assert rows[RECORDS[2].nodeid]["flaky"] == 1
    assert RECORDS[3].nodeid not in rows  # skips are not runs


def test_kcidb_export_validates_against_the_kcidb_schema():
    kcidb_io = pytest.importorskip("kcidb_io", reason="kcidb-io (PyPI) not installed")
    data = report.kcidb(RECORDS)
    kcidb_io.schema.LATEST.validate(json.loads(json.dumps(data)))
    assert {t["status"] for t in data["tests"]} == {"PASS", "FAIL", "SKIP"}
    assert data["tests"][0]["path"] == "knit.suites.mptcp.test_a.test_x.4"
    assert len(data["builds"]) == 2


# Case names as 6.12's mptcp_join.sh -f prints them (see tests/unit/data for real TAP).
JOIN = [
    rec("suites/upstream/test_mptcp_selftests.py::test_selftest[mptcp_join-subflows-debian-6.1]",
        "debian-6.1", "passed", cases=[{"number": 1, "name": "no JOIN", "outcome": "passed"}]),
    rec("suites/upstream/test_mptcp_selftests.py::test_selftest[mptcp_join-subflows-debian-6.12]",
        "debian-6.12", "failed",
        cases=[{"number": 1, "name": "no JOIN", "outcome": "passed"},
               {"number": 2, "name": "single subflow, limited by client", "outcome": "failed"}]),
]


def test_selftest_cases_are_rows_of_the_matrix(tmp_path):
    page = report.html_report(JOIN, tmp_path / "report.html").read_text()
    assert page.count("<tr class=case>") == 2
    row = page.split("› 2 - single subflow, limited by client</th>")[1].split("</tr>")[0]
    assert "class=none" in row and "FAILED" in row  # absent on 6.1, failed on 6.12


def test_kcidb_has_each_selftest_case_as_a_sub_test():
    kcidb_io = pytest.importorskip("kcidb_io", reason="kcidb-io (PyPI) not installed")
    data = report.kcidb(JOIN)
    kcidb_io.schema.LATEST.validate(json.loads(json.dumps(data)))
    paths = [t["path"] for t in data["tests"]]
    assert len(paths) == 5 and len({t["id"] for t in data["tests"]}) == 5
    assert paths[-1].endswith("mptcp_join.subflows.2_single_subflow__limited_by_client")


def test_only_a_whole_run_counts_as_completed(tmp_path):
    for status, whole in ((0, True), (1, True), (2, False), (5, False)):
        results.write_results(tmp_path / "r.json", RECORDS, {"exitstatus": status})
        assert results.completed(tmp_path / "r.json") is whole
    assert not results.completed(tmp_path / "missing.json")
def test_boot_summary_counts_this_sessions_boots_per_kernel(tmp_path):
    log = tmp_path / "boots.jsonl"
    log.write_text("\n".join(json.dumps(b) for b in [
        {"kernel": "debian-6.12", "accel": "tcg", "boot_s": 40.0, "when": 5.0},  # older run
        {"kernel": "debian-6.12", "accel": "tcg", "boot_s": 30.0, "when": 20.0},
        {"kernel": "debian-6.12", "accel": "tcg", "boot_s": 50.0, "when": 21.0},
        {"kernel": "src-6.12", "accel": "tcg", "boot_s": 25.0, "when": 22.0}]) + "\n")
    assert results.boot_summary(log, since=10.0) == {
        "debian-6.12 (tcg)": {"boots": 2, "median_s": 40.0, "max_s": 50.0},
        "src-6.12 (tcg)": {"boots": 1, "median_s": 25.0, "max_s": 25.0}}
    assert results.boot_summary(tmp_path / "none.jsonl", since=0) == {}


def test_boot_summary_leaves_out_a_concurrent_sessions_boots(tmp_path):
    """Two sessions on one artifacts folder at the same time (seen: a debian-6.1 run
    reported the other session's debian-6.12 boot): each counts its own lines."""
    log = tmp_path / "boots.jsonl"
    log.write_text("\n".join(json.dumps(b) for b in [
        {"kernel": "debian-6.12", "accel": "tcg", "boot_s": 30.0, "when": 20.0, "session": "a"},
        {"kernel": "debian-6.1", "accel": "tcg", "boot_s": 20.0, "when": 21.0, "session": "b"},
        {"kernel": "debian-6.12", "accel": "tcg", "boot_s": 9.0, "when": 22.0}]) + "\n")
    assert results.boot_summary(log, since=10.0, session="b") == {
        "debian-6.1 (tcg)": {"boots": 1, "median_s": 20.0, "max_s": 20.0},
        "debian-6.12 (tcg)": {"boots": 1, "median_s": 9.0, "max_s": 9.0}}  # untagged: by time


FLAKY = rec("suites/mptcp/test_a.py::test_z[debian-6.12]", "debian-6.12", "flaky", attempts=2,
            message="AssertionError: first attempt fails")
KNOWN = rec("suites/mptcp/test_a.py::test_k[debian-6.12]", "debian-6.12", "known",
            message="AssertionError: reset", known="dss: https://example.invalid/dss",
            faults=["warning 0123456789ab"])


def test_kcidb_gives_each_attempt_of_a_flaky_test_its_own_record():
    kcidb_io = pytest.importorskip("kcidb_io", reason="kcidb-io (PyPI) not installed")
    within = rec("suites/upstream/t.py::test_s[debian-6.12]", "debian-6.12", "flaky",
                 message="case 2 failed")  # retried its own parts: one attempt, two runs
    data = report.kcidb([FLAKY, within])
    kcidb_io.schema.LATEST.validate(json.loads(json.dumps(data)))
    got = [(t["path"].rsplit(".", 1)[-1], t["status"], t["misc"]["attempt"], t.get("comment"))
           for t in data["tests"]]
    assert got == [("test_z", "FAIL", 1, "AssertionError: first attempt fails"),
                   ("test_z", "PASS", 2, "passed on attempt 2 (flaky)"),
                   ("test_s", "FAIL", 1, "case 2 failed"),
                   ("test_s", "PASS", 2, "passed on attempt 2 (flaky)")]
    assert len({t["id"] for t in data["tests"]}) == 4
    assert "PASS" not in {report.KCIDB_STATUS["flaky"], report.KCIDB_STATUS["known"]}


def test_kcidb_exports_a_known_failure_as_fail_with_its_reference():
    kcidb_io = pytest.importorskip("kcidb_io", reason="kcidb-io (PyPI) not installed")
    data = report.kcidb([KNOWN])
    kcidb_io.schema.LATEST.validate(json.loads(json.dumps(data)))
    [t] = data["tests"]
    assert t["status"] == "FAIL"
    assert t["comment"] == "known issue dss: https://example.invalid/dss; AssertionError: reset"
    assert t["misc"]["known_issue"] == KNOWN.known
    assert t["misc"]["kernel_faults"] == ["warning 0123456789ab"]


def test_matrix_shows_known_and_a_flaky_first_failure(tmp_path):
    page = report.html_report([FLAKY, KNOWN], tmp_path / "report.html").read_text()
    assert f"background:{report.COLOURS['known']}" in page and "KNOWN<br>" in page
    assert "title='known issue dss: https://example.invalid/dss; AssertionError: reset'" in page
    assert "<a href='https://example.invalid/dss'>issue</a>" in page
    assert "title='first failure: AssertionError: first attempt fails'" in page


def test_known_and_faults_round_trip(tmp_path):
    results.write_results(tmp_path / "r.json", [KNOWN], {})
    _, [back] = results.read_results(tmp_path / "r.json")
    assert back == KNOWN and "known" in results.OUTCOMES
