"""suites.toa.lib.stats against /proc/net/toa_stats captured from a guest around known
traffic (tests/unit/data/toa_stats_capture.py: 2 handshakes with TOA, 1 without)."""

from __future__ import annotations

from pathlib import Path

import pytest

from suites.toa.lib.stats import ROWS, delta, parse, parse_per_cpu

DATA = Path(__file__).parent / "data"
KERNEL = "6.12.117+deb12-amd64"
BEFORE = (DATA / f"toa_stats_before_{KERNEL}.txt").read_text()
AFTER = (DATA / f"toa_stats_after_{KERNEL}.txt").read_text()


def test_every_row_in_order_with_one_value_per_possible_cpu() -> None:
    rows = parse_per_cpu(AFTER)
    assert tuple(rows) == ROWS
    assert all(len(v) == 2 for v in rows.values())  # the capture's VM: 2 possible CPUs


def test_totals_sum_the_cpus() -> None:
    assert parse(AFTER)["syn_recv_sock_toa"] == sum(parse_per_cpu(AFTER)["syn_recv_sock_toa"])


def test_delta_shows_the_captured_traffic() -> None:
    d = delta(parse(BEFORE), parse(AFTER))
    assert (d["syn_recv_sock_toa"], d["syn_recv_sock_no_toa"]) == (2, 1)
    assert d["getname_toa_ok"] == 4 and d["getname_toa_mismatch"] == 0
    assert d["getname_toa_empty"] >= 2 and d["getname_toa_bypass"] >= 3


@pytest.mark.parametrize("garbled, where", [
    ("", "empty"),
    ("  CPU0 CPUx\n", "bad header"),
    (AFTER.replace("syn_recv_sock_toa:", "syn_recv_sock_toa"), "line 2"),
    (AFTER.replace("         4 ", "       4x "), "bad value"),
    ("\n".join(AFTER.splitlines()[:3]) + "\ngetname_toa_ok: 1\n", "line 4"),
])
def test_garbled_text_fails_loudly(garbled: str, where: str) -> None:
    with pytest.raises(ValueError, match=where):
        parse_per_cpu(garbled)
