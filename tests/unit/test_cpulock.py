"""The CPU lock across processes: an exclusive holder runs alone, and a waiting one goes
before ordinary tests that arrive after it (else xdist's other worker could starve it)."""

import multiprocessing as mp
import time
from pathlib import Path

from knit import cpulock

pytest_plugins = ["pytester"]


def _hold(root: Path, exclusive: bool, name: str, seconds: float, log: Path) -> None:
    with cpulock.hold(root, exclusive):
        _busy(name, seconds, log)


def _busy(name: str, seconds: float, log: Path) -> None:
    with log.open("a") as f:
        f.write(f"{name} start {time.monotonic()}\n")
    time.sleep(seconds)
    with log.open("a") as f:
        f.write(f"{name} end {time.monotonic()}\n")


def test_exclusive_waits_for_shared_and_goes_before_later_shared(tmp_path):
    log = tmp_path / "log"
    ctx = mp.get_context("fork")
    plan = [("shared1", False, 0.6), ("alone", True, 0.3), ("shared2", False, 0.1)]
    procs = []
    for name, exclusive, seconds in plan:
        p = ctx.Process(target=_hold, args=(tmp_path, exclusive, name, seconds, log))
        p.start()
        procs.append(p)
        time.sleep(0.15)  # arrive in order: shared1 holds, alone waits, shared2 comes
    for p in procs:
        p.join(10)
    order = [line.split()[:2] for line in log.read_text().splitlines()]
    assert order == [["shared1", "start"], ["shared1", "end"], ["alone", "start"],
                     ["alone", "end"], ["shared2", "start"], ["shared2", "end"]]


def test_shared_holders_overlap(tmp_path):
    log = tmp_path / "log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(tmp_path, False, f"s{i}", 0.4, log))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    events = [line.split()[1] for line in log.read_text().splitlines()]
    assert events[:2] == ["start", "start"]


def _slot(root: Path, count: int, name: str, seconds: float, log: Path) -> None:
    with cpulock.slot(root, count):
        _busy(name, seconds, log)


def test_more_workers_than_slots_queue(tmp_path):
    log = tmp_path / "log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_slot, args=(tmp_path, 2, f"w{i}", 0.4, log)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    running, peak = 0, 0
    for line in sorted(log.read_text().splitlines(), key=lambda ln: float(ln.split()[2])):
        running += 1 if line.split()[1] == "start" else -1
        peak = max(peak, running)
    assert peak == 2 and running == 0   # two at a time, and all four ran


def test_slot_count_follows_the_accelerator(monkeypatch):
    monkeypatch.delenv("KNIT_GUEST_SLOTS", raising=False)
    assert cpulock.slot_count("tcg", cpus=2) == 2
    assert cpulock.slot_count("kvm", cpus=2) == 4
    monkeypatch.setenv("KNIT_GUEST_SLOTS", "3")
    assert cpulock.slot_count("tcg", cpus=2) == 3


def test_more_workers_than_slots_are_not_started(pytester, monkeypatch):
    monkeypatch.setenv("KNIT_GUEST_SLOTS", "2")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    r = pytester.runpytest_subprocess("-p", "knit.plugin", "-n", "4", "-p", "no:randomly")
    r.stdout.fnmatch_lines(["*2 workers*"])
    r.stderr.fnmatch_lines(["knit: -n 4 runs 2 workers, one per guest slot (KNIT_GUEST_SLOTS)"])
