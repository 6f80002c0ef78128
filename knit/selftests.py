"""Upstream kernel selftests matching a kernel: fetch the source, build, find the scripts.

Debian kernels take their selftests from the linux-source-<series> package of the same
version. The build (kernel headers plus the C helpers of a target such as net/mptcp) runs
on the host and is cached by (source version, target) under $KNIT_CACHE/selftests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from knit import kernels
from knit.errors import KnitError
from knit.kernels import apt, debian
from knit.kernels import source as ksource

MPTCP = "net/mptcp"  # the target knit collects and builds by default

# mptcp_join.sh's test groups, by option (from its usage text).
MPTCP_JOIN_GROUPS = {
    "f": "subflows", "e": "subflows_error", "s": "signal_address", "l": "link_failure",
    "t": "add_addr_timeout", "r": "remove", "a": "add", "6": "ipv6", "4": "v4mapped",
    "M": "mixed", "b": "backup", "p": "add_addr_ports", "k": "syncookies", "S": "checksum",
    "d": "deny_join_id0", "m": "fullmesh", "z": "fastclose", "F": "fail", "u": "userspace",
    "I": "endpoint",
}

# Groups that remove endpoints while a slow transfer runs, timed by wall clock: under TCG
# with a second guest on the host's cores their removals landed late (remove 2, 4 and 7,
# add_addr_ports 4 and 5 failed or flaked; each group alone passed). They run exclusive.
PACED_JOIN_GROUPS = frozenset({"remove", "add_addr_ports"})


class SelftestError(KnitError):
    pass


@dataclass(frozen=True)
class Tree:
    source_version: str
    root: Path            # the extracted kernel source tree

    def target_dir(self, target: str) -> Path:
        return self.root / "tools" / "testing" / "selftests" / target

    def scripts(self, target: str) -> list[str]:
        return sorted(p.name for p in self.target_dir(target).glob("*.sh")
                      if not p.name.endswith("_lib.sh") and p.name != "settings")

    def captures(self, target: str, script: str) -> bool:
        """Whether `script` takes kselftest's -c (tcpdump a pcap per case into its cwd)."""
        text = (self.target_dir(target) / script).read_text()
        return bool(re.search(r'getopts\s+"[^"]*c[^"]*"|"c"\)|^\s*c\)', text, re.M))

    def reruns_cases(self, target: str, script: str) -> bool:
        """Whether `script` runs only the cases whose numbers follow its options (mptcp_join.sh
        does: `-r 2 4`), so a retry can repeat just the cases that failed."""
        return "only_tests_ids" in (self.target_dir(target) / script).read_text()

    def copy_target(self, target: str, dest: Path) -> Path:
        """A private copy of the built target at `dest/target`: scripts write pcaps and temp
        files into their cwd, so parallel items must not share one. The other entries of
        each parent (net/lib.sh, kselftest/) link back to the tree, for `. ../lib.sh`."""
        out = dest / target
        shutil.copytree(self.target_dir(target), out, symlinks=True, dirs_exist_ok=True)
        for parent in Path(target).parents:
            for entry in (self.target_dir(str(parent))).iterdir():
                link = dest / parent / entry.name
                if not (link.exists() or link.is_symlink()):
                    link.symlink_to(entry)
        return out

    def timeout(self, target: str) -> int:
        """The target's kselftest timeout (its `settings` file; 45 s is kselftest's default)."""
        settings = self.target_dir(target) / "settings"
        if settings.exists():
            m = re.search(r"^timeout=(\d+)", settings.read_text(), re.M)
            if m:
                return int(m.group(1))
        return 45


def source_package(k: kernels.Kernel) -> tuple[str, str]:
    """(package, version) of the linux-source matching a Debian kernel exactly."""
    spec = kernels.load_catalog()["kernel"].get(k.name)
    if not spec or "source_package" not in spec:
        raise SelftestError(f"no source package known for {k.name}: give a tree with "
                            "--selftests-tree")
    pkg = spec["source_package"]
    s = apt.settings()
    apt.update(s)
    versions = apt.versions(s, pkg)
    want = _image_package_version(s, k)
    if want not in versions:
        raise SelftestError(f"{pkg} {want} (matching {k.version}) is not in knit's apt lists "
                            f"(have: {', '.join(versions) or 'none'}): "
                            "run 'knit kernels list --update'")
    return pkg, want


def _image_package_version(s: dict, k: kernels.Kernel) -> str:
    image = debian.packages(s, k.version)[0]
    v = apt.candidate(s, image)
    if v is None:
        raise SelftestError(f"{image} not in knit's apt lists: run 'knit kernels list --update'")
    return v


def cached(k: kernels.Kernel) -> Tree | None:
    """The tree fetched before for `k`, without asking apt (fetch records the pairing)."""
    link = kernels.cache_dir() / "selftests" / f"kernel-{k.version}"
    if not link.exists():
        return None
    version = link.read_text().strip()
    base = kernels.cache_dir() / "selftests" / version
    return Tree(version, base / "src") if (base / "complete").exists() else None


def fetch(k: kernels.Kernel, progress: Callable[[str], None] =
          lambda m: print(m, file=sys.stderr)) -> Tree:
    """Download and extract the matching source once; later calls return the cache.
    A source-built kernel takes its selftests from the source it was built from."""
    built = k.image / ".." / "build.json" if k.image.is_dir() else None
    if built is not None and built.exists():
        revision = json.loads(built.read_text())["revision"]
        if "=" not in revision:  # a git tree: its own selftests, built in place
            return Tree(revision, Path(json.loads(built.read_text())["tree"]))
        pkg, version = revision.split("=", 1)
    else:
        pkg, version = source_package(k)
    base = kernels.cache_dir() / "selftests" / version
    root = base / "src"
    with kernels.locked(base.parent / f".{version}.lock"):
        if (base / "complete").exists():
            (base.parent / f"kernel-{k.version}").write_text(version + "\n")
            return Tree(version, root)
        ksource.extract(pkg, version, root, progress)
        (base / "complete").write_text(version + "\n")
    (base.parent / f"kernel-{k.version}").write_text(version + "\n")
    return Tree(version, root)


def build(tree: Tree, target: str, progress: Callable[[str], None] =
          lambda m: print(m, file=sys.stderr)) -> Path:
    """Install the headers and build `target`'s helpers; cached per (version, target)."""
    stamp = tree.root.parent / f"built-{target.replace('/', '_')}"
    with kernels.locked(tree.root.parent / ".build.lock"):
        if stamp.exists():
            return tree.target_dir(target)
        if not (tree.root / "usr" / "include" / "linux").is_dir():
            progress("selftests: make headers")
            _make(tree.root, ["headers"])
        progress(f"selftests: building {target}")
        _make(tree.root / "tools" / "testing" / "selftests", [f"TARGETS={target}"])
        stamp.write_text("ok\n")
    return tree.target_dir(target)


def _make(cwd: Path, args: list[str]) -> None:
    p = subprocess.run(["make", "-j2", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=3600)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-40:])
        raise SelftestError(f"make {' '.join(args)} failed in {cwd} (exit {p.returncode}):"
                            f"\n{tail}")
