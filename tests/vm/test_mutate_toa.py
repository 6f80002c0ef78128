"""knit mutate end to end on one TOA mutant: the unmutated kmod/toa (the positive control)
passes the selected case, and the mutant that hands getpeername() the option's port in
host order fails it. Two child pytest sessions, one boot each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knit import kernels
from knit.mutate import engine

MUTANT = "toa-kmod-port-host-order"
CASE = "suites/toa/test_toa_options.py::test_option_in_the_third_ack_is_the_peer"


def test_one_toa_mutant_is_killed_and_its_base_passes(request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    kernel = (request.config.getoption("kernel") or [kernels.default_kernel()])[0]
    lines: list[str] = []
    # retries=0: this mutant fails deterministically, and CI's minutes are few.
    s = engine.mutate(None, kernel, tmp_path, lines.append, ids=[MUTANT],
                      tests=[CASE, "-k", "kind254"], retries=0)
    [m] = s["mutants"]
    assert (m["id"], m["verdict"]) == (MUTANT, "killed"), "\n".join(lines)
    assert m["killed_by"] == [f"{CASE.split('::')[0]}::test_option_in_the_third_ack_is_the_"
                              f"peer[{kernel}-kind254-len8-kmod]"]
    matrix = json.loads((tmp_path / "mutation.json").read_text())
    [base] = matrix["bases"]
    assert set(base["cells"].values()) == {"passed"}, base     # the positive control
    assert (tmp_path / "mutation.html").exists()
    # A second run knows both verdicts and runs nothing.
    again = engine.mutate(None, kernel, tmp_path, lines.append, ids=[MUTANT],
                          tests=[CASE, "-k", "kind254"], retries=0)
    assert (again["ran"], again["killed"]) == (0, 1)
