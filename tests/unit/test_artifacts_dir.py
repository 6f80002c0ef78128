"""fresh_test_dir: a flake retry keeps the failed attempts' files, a new run starts empty."""

from __future__ import annotations

from knit.artifacts import fresh_test_dir

NODE = "suites/mptcp/test_families.py::test_v4_mapped[debian-6.12]"


def test_retry_moves_each_failed_attempt_aside(tmp_path):
    d = fresh_test_dir(tmp_path, NODE)
    (d / "capture.pcap").write_text("first")
    assert fresh_test_dir(tmp_path, NODE, failed_attempts=1) == d
    (d / "capture.pcap").write_text("second")
    fresh_test_dir(tmp_path, NODE, failed_attempts=2)
    assert sorted(p.name for p in d.iterdir()) == ["attempt-1", "attempt-2"]
    assert (d / "attempt-1" / "capture.pcap").read_text() == "first"
    assert (d / "attempt-2" / "capture.pcap").read_text() == "second"


def test_first_attempt_starts_empty(tmp_path):
    d = fresh_test_dir(tmp_path, NODE)
    (d / "attempt-1").mkdir()
    (d / "wire.txt").write_text("an earlier run")
    assert list(fresh_test_dir(tmp_path, NODE).iterdir()) == []
