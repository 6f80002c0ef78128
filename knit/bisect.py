"""`knit bisect`: `git bisect run` over a kernel git tree, building each step with knit's
config fragments and judging it with a pytest selection.

Each step builds out of tree into one reused O= directory (incremental between steps), then
runs pytest with `--kernel path:<O=>`. What git is told:
    0    every selected test passed (xfail and skip allowed, one pass needed)
    1    a selected test failed, hit a known kernel issue, or the kernel logged a fault
         for it (also at teardown: the health check's error is the kernel's doing)
    125  the step cannot judge: build failure, infrastructure error, or nothing ran
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from knit import kernels
from knit.errors import KernelError, KnitError
from knit.kernels import build as kernel_build

GOOD, BAD, SKIP = 0, 1, 125


def judged(test: dict) -> str:
    """A results.json record's outcome as bisect counts it: a kernel fault found for the
    test (Record.faults, in any phase) or a known issue is a failure of this kernel."""
    if test.get("faults") or test["outcome"] == "known":
        return "failed"
    return test["outcome"]


def verdict(outcomes: Iterable[str]) -> int:
    """git bisect's exit code for one step's test outcomes (results.json vocabulary, as
    `judged`). An error without a kernel fault (setup broke, state left behind) cannot
    judge the kernel. A flaky test counts as passed: it failed once with a clean kernel
    log (a kernel fault is never retried), which is what --flake-retries tolerates."""
    seen = set(outcomes)
    if "failed" in seen:
        return BAD
    if "error" in seen or not seen & {"passed", "flaky", "xfailed"}:
        return SKIP
    return GOOD


def _git(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
    if check and p.returncode:
        raise KnitError(f"git {' '.join(args)} failed in {tree}: {p.stderr.strip()}")
    return p


def workdir(tree: Path) -> Path:
    """The O= directory shared by every step of bisects of `tree`."""
    h = hashlib.sha256(str(tree).encode()).hexdigest()[:12]
    return kernels.cache_dir() / "kbuild" / f"bisect-{h}" / "out"


def run(tree: Path, good: str, bad: str, pytest_args: list[str], configs: list[str],
        jobs: int = 0) -> int:
    """Drive `git bisect run` to the first bad commit; the tree is reset afterwards."""
    tree = tree.expanduser().resolve()
    if not (tree / "Kconfig").exists():
        raise KnitError(f"{tree} is not a kernel source tree (no Kconfig)")
    if _git(tree, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        raise KnitError(f"{tree} has uncommitted changes: commit or stash them, bisect "
                        "checks out other commits")
    if pytest_args[:1] == ["pytest"]:
        pytest_args = pytest_args[1:]
    if not pytest_args:
        raise KnitError("knit bisect needs the test to judge by: -- pytest suites/...::test")
    kernel_build.fragments(configs)  # fail now, not at every step
    step = [sys.executable, "-m", "knit.bisect", "step", str(tree), ",".join(configs),
            str(jobs), *pytest_args]
    _git(tree, "bisect", "start", bad, good)
    try:
        p = subprocess.run(["git", "-C", str(tree), "bisect", "run", *step],
                           cwd=kernels.ROOT)
        print(_git(tree, "bisect", "log").stdout)
        return p.returncode
    finally:
        _git(tree, "bisect", "reset", check=False)


def step(tree: Path, configs: list[str], jobs: int, pytest_args: list[str]) -> int:
    """One bisect step at the tree's current checkout."""
    rev = _git(tree, "rev-parse", "--short", "HEAD").stdout.strip()
    out = workdir(tree)
    print(f"knit bisect: {rev}: building", file=sys.stderr, flush=True)
    try:
        r = kernel_build.build_in(tree, out, kernel_build.fragments(configs), jobs=jobs)
    except KernelError as e:
        print(f"knit bisect: {rev}: build failed, skipping: {str(e).splitlines()[0]}",
              file=sys.stderr)
        return SKIP
    with tempfile.TemporaryDirectory(prefix="knit-bisect-") as tmp:
        res = Path(tmp) / "results.json"
        argv = [sys.executable, "-m", "pytest", *pytest_args, "--kernel", f"path:{out}",
                "--knit-results", str(res), "--knit-artifacts", str(Path(tmp) / "art"),
                "-p", "no:randomly"]
        rc = subprocess.run(argv, cwd=kernels.ROOT).returncode
        tests = json.loads(res.read_text())["tests"] if res.exists() else []
    v = verdict(judged(t) for t in tests)
    word = {GOOD: "good", BAD: "bad", SKIP: "skip"}[v]
    print(f"knit bisect: {rev} ({r.version}): pytest exit {rc}, "
          f"{len(tests)} results: {word}", file=sys.stderr)
    return v


if __name__ == "__main__":  # the command git bisect run calls
    if len(sys.argv) < 6 or sys.argv[1] != "step":
        sys.exit("usage: python -m knit.bisect step TREE CONFIGS JOBS PYTEST_ARGS...")
    sys.exit(step(Path(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]), sys.argv[5:]))
