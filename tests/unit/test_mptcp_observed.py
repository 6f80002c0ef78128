"""suites.mptcp.lib.session.Observed.check on real counters (a 6.18 host's nstat before and
after three MPTCP connections, tests/unit/data/nstat_*_6.18.44-fc-v657.txt): a counter the
kernel lacks is a skip naming it, or, when the test marks it optional, noted and not
checked; never silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from suites.mptcp.lib.nstat import parse_nstat
from suites.mptcp.lib.session import Observed

DATA = Path(__file__).parent / "data"
KERNEL = "6.18.44-fc-v657"


@pytest.fixture
def obs(tmp_path: Path) -> tuple[Observed, list[str]]:
    notes: list[str] = []
    o = Observed(KERNEL, tmp_path / "capture.pcap", notes.append)
    o.before = {"ns1": parse_nstat((DATA / f"nstat_before_{KERNEL}.txt").read_text())}
    o.after = {"ns1": parse_nstat((DATA / f"nstat_after_{KERNEL}.txt").read_text())}
    return o, notes


def test_present_counters_are_checked(obs: tuple[Observed, list[str]]) -> None:
    o, notes = obs
    o.check("ns1", MPCapableSYNTX=3, MPFastcloseTx=1)
    with pytest.raises(AssertionError, match="MPCapableSYNTX"):
        o.check("ns1", MPCapableSYNTX=2)
    assert notes == [] and o.absent == []


def test_a_missing_counter_skips_naming_it(obs: tuple[Observed, list[str]]) -> None:
    o, notes = obs
    with pytest.raises(pytest.skip.Exception, match=f"MPTcpExtNotAMib missing in {KERNEL}"):
        o.check("ns1", MPCapableSYNTX=3, NotAMib=0)
    assert notes == []


def test_an_optional_missing_counter_is_noted_and_the_rest_checked(
        obs: tuple[Observed, list[str]]) -> None:
    o, notes = obs
    o.check("ns1", optional=("NotAMib",), MPCapableSYNTX=3, NotAMib=0)
    assert notes == o.absent == ["ns1 MPTcpExtNotAMib"]
    with pytest.raises(AssertionError, match="MPCapableSYNTX"):
        o.check("ns1", optional=("NotAMib",), MPCapableSYNTX=0, NotAMib=0)
    with pytest.raises(ValueError, match="Typo"):
        o.check("ns1", optional=("Typo",), MPCapableSYNTX=3)
