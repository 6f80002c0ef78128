"""Clean kernel source trees from Debian's linux-source-<series> packages, cached per
package version under $KNIT_CACHE/ksrc/<version>/src. Nothing is ever built inside them:
builds use O= directories, and the selftests copy what they need."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from knit import kernels
from knit.errors import KnitError


class SourceError(KnitError):
    pass


def candidate(pkg: str) -> str:
    """The version apt would install of `pkg` (the newest in the lists)."""
    out = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            v = line.split(":", 1)[1].strip()
            if v and v != "(none)":
                return v
    raise SourceError(f"{pkg} is not in apt's lists: run 'apt-get update' (Debian 12, main)")


def extract(pkg: str, version: str, dest: Path,
            progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
    """Download `pkg`=`version` and unpack its linux-source tarball as `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        progress(f"source: downloading {pkg} {version}")
        kernels.run_tool(["apt-get", "download", "-q", f"{pkg}={version}"], cwd=tmp,
                         fix=f"check 'apt-cache policy {pkg}'")
        deb = next(Path(tmp).glob("*.deb"))
        kernels.run_tool(["dpkg-deb", "-x", str(deb), tmp], fix="the download is corrupt")
        tarball = next(Path(tmp).glob("usr/src/linux-source-*.tar.*"))
        progress(f"source: extracting {tarball.name}")
        with tarfile.open(tarball) as tf:
            top = tf.next().name.split("/")[0]
            tf.extractall(tmp, filter="tar")
        (Path(tmp) / top).rename(dest)


def tree(pkg: str, version: str | None = None,
         progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> Path:
    """A clean source tree of `pkg` (default: apt's candidate version), extracted once."""
    version = version or candidate(pkg)
    base = kernels.cache_dir() / "ksrc" / version
    with kernels.locked(base.parent / f".{version}.lock"):
        if not (base / "complete").exists():
            extract(pkg, version, base / "src", progress)
            (base / "complete").write_text(f"{pkg}={version}\n")
    return base / "src"
