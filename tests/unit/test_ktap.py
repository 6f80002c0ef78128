"""TAP parsing of kselftest output, on a real diag.sh run from a 6.12 guest."""

from pathlib import Path

from knit import ktap

DATA = Path(__file__).parent / "data"


def test_diag_run_gives_every_case_with_its_outcome():
    cases = ktap.parse((DATA / "ktap_mptcp_diag_6.12.117.txt").read_text())
    assert [c.number for c in cases] == list(range(1, 30))
    by = {c.number: c for c in cases}
    assert by[1].outcome == "passed" and by[1].name == "diag: no msk on netns creation"
    assert by[3].outcome == "skipped"
    assert by[6].outcome == "failed" and by[6].name == "diag: after MPC handshake"
    assert sum(c.outcome == "failed" for c in cases) == 6


def test_mptcp_lib_flaky_marker_and_plain_lines():
    text = "ok 1 - a # IGNORE Flaky time=3ms\nnot ok 2 - b\nnoise\nok 3\n"
    assert [(c.number, c.outcome) for c in ktap.parse(text)] == [
        (1, "flaky"), (2, "failed"), (3, "passed")]


def test_join_groups_are_read_from_the_script():
    script = "all_tests_sorted=(\n\tf@subflows_tests\n\tS@checksum_tests\n)\n"
    assert ktap.join_groups(script) == {"f": "subflows", "S": "checksum"}


def test_cases_round_trip_through_junit_properties():
    cases = ktap.parse((DATA / "ktap_mptcp_diag_6.12.117.txt").read_text())
    props = [("kernel", "debian-6.12")] + [(ktap.prop_name(c), c.outcome) for c in cases]
    back = ktap.cases_from_props(props)
    assert back == [{"number": c.number, "name": c.name, "outcome": c.outcome} for c in cases]


def test_merge_retry_matches_the_rerun_by_name_not_number():
    first = ktap.parse((DATA / "ktap_mptcp_join_remove_6.12.117.txt").read_text())
    # `mptcp_join.sh -r 2 4` numbers its two cases 1 and 2.
    retry = ktap.parse("ok 1 - mptcp_join: remove multiple subflows\n"
                       "not ok 2 - mptcp_join: remove subflow and signal\n")
    by = {c.number: c for c in ktap.merge_retry(first, retry)}
    assert len(by) == 14
    assert by[2].outcome == "flaky" and by[2].directive.startswith("passed on retry")
    assert by[4].outcome == "failed"
    assert by[1].outcome == "passed" and by[1] == first[0]
