"""Where a mutant's source comes from, and the mutated copy of it.

    toa kmod   kmod/toa of the checkout            copied whole (a module source dir)
    toa bpf    bpf/toa of the checkout             copied whole (toa.bpf.c and friends)
    tipc       net/tipc of linux-source-6.12       copied whole (built as tipc.ko)
    mptcp      the whole linux-source-6.12 tree    one hard-linked working tree, the
                                                   mutated file replaced (never written
                                                   through the link), restored after

Copies live under $KNIT_CACHE/mutate/src/<id>-<base hash>/, keyed by the base tree's
hash, so an unchanged mutant on an unchanged base is not copied twice. The base hash is
part of every verdict's key: a new kmod/toa or a new Debian source redoes the mutants.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from knit import kbuild, kernels
from knit.kernels import locked
from knit.kernels import source as ksource
from knit.mutate.catalog import CatalogueError, Mutant, apply_text
from knit.paths import ROOT

SOURCE_PACKAGE = "linux-source-6.12"   # debian-6.12's source: its tipc.ko and net/mptcp


@dataclass(frozen=True)
class Base:
    """The unmutated tree a mutant applies to."""

    root: Path      # the directory the target is relative to
    tree: Path      # the directory that is copied (a module source dir) or worked in
    hash: str       # identity of the tree's content (sha256 prefix)
    label: str      # for reports: "kmod/toa", "linux-source-6.12=6.12.118-1 net/tipc"


def _dir_of(m: Mutant) -> str:
    return str(Path(m.target).parent)


def kernel_source(version: str | None = None) -> Path:
    """The clean linux-source-6.12 tree (downloaded and extracted once by knit)."""
    return ksource.tree(SOURCE_PACKAGE, version)


def base(m: Mutant, ksrc: Path | None = None) -> Base:
    """The base tree of `m`; `ksrc` overrides the kernel source tree (tests, --tree)."""
    if m.suite == "toa":
        tree = ROOT / _dir_of(m)
        return Base(ROOT, tree, kbuild.source_hash(tree)[:16], _dir_of(m))
    src = ksrc or kernel_source()
    sub = src / _dir_of(m)
    if not sub.is_dir():
        raise CatalogueError(f"{m.id}: {sub} does not exist: is {src} a kernel source tree?")
    rev = (src.parent / "complete").read_text().strip() if (src.parent / "complete").exists() \
        else str(src)
    # net/<x> alone decides what a tipc.ko or a kernel's MPTCP does among the mutants'
    # targets; the package revision covers everything else of the tree.
    h = kbuild.source_hash(sub)[:16]
    tree = sub if m.suite == "tipc" else src
    return Base(src, tree, h, f"{rev} {_dir_of(m)}")


def mutated_copy(m: Mutant, b: Base, cache: Path | None = None) -> Path:
    """A copy of `b.tree` with `m` applied (tipc, toa); returns the copied directory,
    named like the original so kbuild names the module the same."""
    if m.suite == "mptcp":
        raise CatalogueError(f"{m.id}: an MPTCP mutant is applied in a working tree "
                             "(work_tree), not copied")
    out = (cache or kernels.cache_dir()) / "mutate" / "src" / f"{m.id}-{b.hash}-{m.digest}"
    dest = out / b.tree.name
    with locked(out.parent / f".{out.name}.lock"):
        if (out / "complete").exists():
            return dest
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(b.tree, dest, ignore=lambda d, names: [
            n for n in names if kbuild.BUILD_PRODUCTS.search(n)])
        target = b.root / m.target
        rel = target.relative_to(b.tree)
        (dest / rel).write_text(apply_text(target.read_text(), m))
        (out / "complete").write_text(f"{m.id} {m.digest} on {b.label} {b.hash}\n")
    return dest


def work_tree(src: Path, cache: Path | None = None) -> Path:
    """A hard-linked copy of the kernel tree `src` (cheap: no file data copied) that
    mutants are applied in, one at a time; `src` itself stays clean."""
    out = (cache or kernels.cache_dir()) / "mutate" / "trees" / src.parent.name
    with locked(out.parent / f".{out.name}.lock"):
        if not (out / ".complete").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-al", str(src), str(out)], check=True)
            (out / ".complete").write_text(f"{src}\n")
    return out


def apply_in(work: Path, src: Path, m: Mutant) -> None:
    """Apply `m` in the working tree: unlink the hard link first, so the clean tree's
    file is never written. `restore` undoes it."""
    target = work / m.target
    text = apply_text((src / m.target).read_text(), m)
    target.unlink()
    target.write_text(text)


def restore(work: Path, src: Path, m: Mutant) -> None:
    """Put a copy of the clean file back, with a fresh mtime so the next incremental
    build recompiles it."""
    target = work / m.target
    target.unlink(missing_ok=True)
    shutil.copy2(src / m.target, target)
    os.utime(target)
