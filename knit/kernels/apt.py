"""knit's own apt: sources, lists and downloads under $KNIT_CACHE/apt.

Kernels resolve against Debian's archive the same way on any host release. The host's apt
configuration is never changed: every call passes its own source list, lists, cache and an
empty dpkg status, so nothing the host has installed or pinned changes a resolution.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from knit.errors import KernelError
from knit.kernels.cache import cache_dir, load_catalog, locked, run_tool

DEFAULTS = {
    "mirror": "http://deb.debian.org/debian",
    "security": "http://deb.debian.org/debian-security",
    "suites": ["bookworm", "bookworm-backports", "trixie", "trixie-backports"],
    "security_suites": ["bookworm-security", "trixie-security"],
    "keyring": "/usr/share/keyrings/debian-archive-keyring.gpg",
    "max_age_hours": 24,
}


def settings(catalog: dict | None = None) -> dict:
    """The [apt] table of kernels.toml over the defaults; env overrides the mirrors."""
    catalog = load_catalog() if catalog is None else catalog
    s = {**DEFAULTS, **catalog.get("apt", {})}
    s["mirror"] = os.environ.get("KNIT_DEBIAN_MIRROR", s["mirror"])
    s["security"] = os.environ.get("KNIT_DEBIAN_SECURITY", s["security"])
    return s


def base() -> Path:
    return cache_dir() / "apt"


def sources_text(s: dict) -> str:
    line = "deb [arch=amd64 signed-by={k}] {uri} {suite} main\n"
    out = [line.format(k=s["keyring"], uri=s["mirror"], suite=x) for x in s["suites"]]
    out += [line.format(k=s["keyring"], uri=s["security"], suite=x)
            for x in s["security_suites"]]
    return "".join(out)


def options(s: dict) -> list[str]:
    b = base()
    opts = {
        "Dir::Etc::SourceList": b / "sources.list",
        "Dir::Etc::SourceParts": b / "sources.list.d",
        "Dir::Etc::Preferences": b / "preferences",
        "Dir::Etc::PreferencesParts": b / "preferences.d",
        "Dir::State::Lists": b / "lists",
        "Dir::State::status": b / "status",
        "Dir::Cache": b / "cache",
        "Acquire::Languages": "none",
        "APT::Architecture": "amd64",
        "APT::Architectures": "amd64",
        "APT::Sandbox::User": "root",   # downloads land in knit's folders, not _apt's
    }
    return [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]


def _layout(s: dict) -> None:
    b = base()
    for d in ("sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"):
        (b / d).mkdir(parents=True, exist_ok=True)
    for f in ("status", "preferences"):
        (b / f).touch()
    text = sources_text(s)
    src = b / "sources.list"
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
        (b / "updated").unlink(missing_ok=True)   # new sources: lists are stale


def update(s: dict, force: bool = False) -> None:
    """Refresh knit's lists when they are missing, older than max_age_hours, or forced.
    Offline with lists present: keep the old ones."""
    if not Path(s["keyring"]).exists():
        raise KernelError(f"{s['keyring']} missing: apt-get install debian-archive-keyring")
    with locked(base() / ".lock"):
        _layout(s)
        stamp = base() / "updated"
        fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < s["max_age_hours"] * 3600
        if fresh and not force:
            return
        try:
            run_tool(["apt-get", *options(s), "-q", "update"],
                     fix=f"check that {s['mirror']} is reachable (or set KNIT_DEBIAN_MIRROR)",
                     timeout=600)
        except KernelError:
            if not any((base() / "lists").glob("*_Packages")):
                raise
            return  # offline: the lists we have still resolve
        stamp.touch()


def names(s: dict, regex: str) -> list[str]:
    """Package names matching a POSIX `regex` in knit's lists."""
    out = run_tool(["apt-cache", *options(s), "search", "--names-only", regex],
                   fix="install apt (knit resolves kernels with Debian's apt)", timeout=120)
    return [line.split(" ", 1)[0] for line in out.splitlines() if line.strip()]


def depends(s: dict, pkg: str) -> list[str]:
    p = subprocess.run(["apt-cache", *options(s), "depends", pkg], capture_output=True,
                       text=True, timeout=120)
    return [ln.split(":", 1)[1].strip() for ln in p.stdout.splitlines()
            if ln.strip().startswith("Depends:")]


def exists(s: dict, pkg: str) -> bool:
    p = subprocess.run(["apt-cache", *options(s), "show", "--no-all-versions", pkg],
                       capture_output=True, text=True, timeout=120)
    return p.returncode == 0 and "Package:" in p.stdout


def candidate(s: dict, pkg: str) -> str | None:
    out = subprocess.run(["apt-cache", *options(s), "policy", pkg], capture_output=True,
                         text=True, timeout=120).stdout
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            v = line.split(":", 1)[1].strip()
            return v if v and v != "(none)" else None
    return None


def versions(s: dict, pkg: str) -> list[str]:
    """Every version of `pkg` in knit's lists (apt-cache madison)."""
    out = subprocess.run(["apt-cache", *options(s), "madison", pkg], capture_output=True,
                         text=True, timeout=120).stdout
    return [ln.split("|")[1].strip() for ln in out.splitlines() if ln.count("|") >= 2]


def suite_of(s: dict, pkg: str) -> str | None:
    """The archive suite apt would take `pkg` from (e.g. trixie-backports)."""
    out = subprocess.run(["apt-cache", *options(s), "policy", pkg], capture_output=True,
                         text=True, timeout=120).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit() and parts[1].startswith("http"):
            return parts[2].split("/")[0]
    return None


def download(s: dict, pkgs: list[str], dest: Path) -> None:
    run_tool(["apt-get", *options(s), "download", "-q", *pkgs], cwd=dest,
             fix=f"check 'knit kernels list' and that {s['mirror']} is reachable")
