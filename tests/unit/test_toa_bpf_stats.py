"""suites.toa.lib.stats.parse_bpftool against bpf/toa's counter map as `bpftool -j map dump`
printed it in a guest around known traffic (tests/unit/data/toa_bpf_stats_capture.py:
2 handshakes with TOA, 1 without)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suites.toa.lib.stats import BPF_ROWS, ROWS, delta, parse_bpftool

DATA = Path(__file__).parent / "data"
KERNEL = "6.12.117+deb12-amd64"
BEFORE = (DATA / f"toa_bpf_stats_before_{KERNEL}.json").read_text()
AFTER = (DATA / f"toa_bpf_stats_after_{KERNEL}.json").read_text()


def totals(text: str) -> dict[str, int]:
    return {k: sum(v) for k, v in parse_bpftool(text).items()}


def test_every_row_with_one_value_per_possible_cpu() -> None:
    rows = parse_bpftool(AFTER)
    assert tuple(rows) == BPF_ROWS and BPF_ROWS[:len(ROWS)] == ROWS
    assert all(len(v) == 2 for v in rows.values())  # the capture's VM: 2 possible CPUs


def test_freshly_attached_counters_are_zero() -> None:
    assert set(totals(BEFORE).values()) == {0}


def test_delta_shows_the_captured_traffic() -> None:
    d = delta(totals(BEFORE), totals(AFTER))
    assert (d["syn_recv_sock_toa"], d["syn_recv_sock_no_toa"]) == (2, 1)
    assert d["getname_toa_ok"] == 4          # accept() and getpeername() of each TOA conn
    assert d["toa_sock_closed"] == 2         # the connections were closed before the dump
    assert d["syn_recv_sock_toa_untrusted"] == 0


def test_a_missing_row_is_an_error() -> None:
    dump = json.loads(AFTER)
    with pytest.raises(ValueError, match="keys"):
        parse_bpftool(json.dumps(dump[:-1]))


def test_a_value_of_the_wrong_width_is_an_error() -> None:
    dump = json.loads(AFTER)
    dump[0]["values"][0]["value"] = dump[0]["values"][0]["value"][:4]
    with pytest.raises(ValueError, match="value of 4 bytes"):
        parse_bpftool(json.dumps(dump))
