"""knit bench --selftests checks its own inputs: a direct vng run counts only when vng ran
the group to the end (a known exit code, TAP cases as many as the plan), and knit's side
only when every group has cases. The TAP text is a real mptcp_join.sh -r run
(tests/unit/data/ktap_mptcp_join_remove_6.12.117.txt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knit.bench_selftests import group_cases, knit_verdicts
from knit.errors import KnitError

TAP = (Path(__file__).parent / "data" / "ktap_mptcp_join_remove_6.12.117.txt").read_text()


def test_a_complete_group_gives_its_cases() -> None:
    assert len(group_cases("r", 255, TAP)) == 14


@pytest.mark.parametrize("rc, text, why", [
    (255, "[    3.1] Kernel panic - not syncing\n", r"vng exited 255 with 0 TAP cases"),
    (1, TAP, r"vng exited 1 with 14 of 14"),
    (255, TAP.rsplit("ok 14", 1)[0], r"13 of 14 TAP cases"),
])
def test_an_incomplete_run_is_a_one_line_error(rc: int, text: str, why: str) -> None:
    with pytest.raises(KnitError, match=why) as e:
        group_cases("r", rc, text)
    assert "\n" not in str(e.value)


def test_knit_results_without_the_groups_cases_are_refused(tmp_path: Path) -> None:
    groups = {"r": "remove", "f": "fullmesh"}
    with pytest.raises(KnitError, match="no knit results"):
        knit_verdicts(tmp_path / "missing.json", groups, print)
    out = tmp_path / "results.json"
    cases = [{"number": c.number, "name": c.name, "outcome": c.outcome}
             for c in group_cases("r", 255, TAP)]
    out.write_text(json.dumps({"tests": [
        {"test": "test_mptcp_join[mptcp_join-remove]", "nodeid": "x", "outcome": "passed",
         "cases": cases}]}))
    with pytest.raises(KnitError, match="group.s. fullmesh"):
        knit_verdicts(out, groups, print)
    verdicts, _ = knit_verdicts(out, {"r": "remove"}, print)
    assert len(verdicts) == 14
