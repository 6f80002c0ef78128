"""Clean kernel source trees from Debian's linux-source-<series> packages, cached per
package version under $KNIT_CACHE/ksrc/<version>/src. Nothing is ever built inside them:
builds use O= directories, and the selftests copy what they need."""

from __future__ import annotations

import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from knit.errors import KnitError
from knit.kernels import apt
from knit.kernels.cache import cache_dir, locked, run_tool


class SourceError(KnitError):
    pass


def candidate(pkg: str) -> str:
    """The version apt would install of `pkg` (the newest in knit's lists)."""
    s = apt.settings()
    apt.update(s)
    v = apt.candidate(s, pkg)
    if v is None:
        raise SourceError(f"{pkg} is not in knit's apt lists ({', '.join(s['suites'])}): "
                          "add its suite under [apt] in kernels/kernels.toml")
    return v


def extract(pkg: str, version: str, dest: Path,
            progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
    """Download `pkg`=`version` and unpack its linux-source tarball as `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        progress(f"source: downloading {pkg} {version}")
        apt.download(apt.settings(), [f"{pkg}={version}"], Path(tmp))
        deb = next(Path(tmp).glob("*.deb"))
        run_tool(["dpkg-deb", "-x", str(deb), tmp], fix="the download is corrupt")
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
    base = cache_dir() / "ksrc" / version
    with locked(base.parent / f".{version}.lock"):
        if not (base / "complete").exists():
            extract(pkg, version, base / "src", progress)
            (base / "complete").write_text(f"{pkg}={version}\n")
    return base / "src"
