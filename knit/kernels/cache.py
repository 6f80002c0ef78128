"""Where knit keeps what it downloads and builds, and the two primitives every cache user
needs: a cross-process lock and a tool runner whose failure is one line with the fix."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from knit.errors import KernelError
from knit.paths import ROOT

KERNELS_TOML = ROOT / "kernels" / "kernels.toml"


def cache_dir() -> Path:
    return Path(os.environ.get("KNIT_CACHE", Path.home() / ".cache" / "knit"))


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock file, shared by xdist workers and concurrent knit commands."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_tool(argv: list[str], fix: str, cwd: str | Path | None = None,
             timeout: float = 1800) -> str:
    """Run a host tool; a failure is a KernelError naming the last line it printed."""
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        raise KernelError(f"{argv[0]} not found: {fix}") from e
    except subprocess.TimeoutExpired as e:
        raise KernelError(f"{' '.join(argv[:3])} timed out after {timeout:.0f}s: {fix}") from e
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines()
                or ["(no output)"])[-1]
        raise KernelError(f"{' '.join(argv[:3])} failed: {last}: {fix}")
    return p.stdout


def load_catalog(path: Path = KERNELS_TOML) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)
