"""`knit bench --suite PATH --workers 2,4`: one suite's wall time at each -n, in one run,
so the ratio compares like with like on a shared, noisy host."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from knit import cpulock
from knit.errors import KnitError

# pytest's closing line, with or without -q's missing '=' frame: "39 passed in 104.0s".
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s", re.M)


def counts(output: str) -> dict[str, int]:
    """pytest's closing line as counts: '38 passed, 1 xfailed in 180.1s' -> {...}."""
    found = SUMMARY.findall(output)
    if not found:
        return {}
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", found[-1])}


def run(path: str, workers: list[int], kernel: str, log: Callable[[str], None] = print,
        extra: list[str] | None = None) -> dict:
    runs = []
    for n in workers:
        art = Path("artifacts") / "bench-suite" / f"n{n}"
        argv = [sys.executable, "-m", "pytest", path, "-n", str(n), "-q", "-p", "no:randomly",
                "--kernel", kernel, "--knit-artifacts", str(art), *(extra or [])]
        log(f"bench suite: {' '.join(argv[2:])}")
        t0 = time.monotonic()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        wall = time.monotonic() - t0
        c = counts(p.stdout)
        if p.returncode not in (0, 1) or not c:   # 0/1: tests ran; anything else did not
            tail = "\n".join(p.stdout.strip().splitlines()[-5:])
            raise KnitError(f"pytest -n {n} exited {p.returncode} with no usable result:\n{tail}")
        log(f"bench suite: -n {n}: {wall:.1f}s, {c}")
        runs.append({"workers": n, "wall_s": round(wall, 1), "exit": p.returncode, **c})
    base = runs[0]["wall_s"]
    return {"suite": path, "kernel": kernel, "host_cpus": os.cpu_count(),
            "guest_slots": cpulock.slot_count(os.environ.get("KNIT_ACCEL")),
            "runs": runs, "ratios": {f"n{r['workers']}/n{workers[0]}": round(r["wall_s"] / base, 3)
                                     for r in runs[1:]}}
