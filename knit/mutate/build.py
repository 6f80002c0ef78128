"""Build one mutant into what its suite's tests take, and the pytest options that swap it in.

    toa kmod   toa.ko from the mutated kmod/toa copy     --toa-reference-src COPY
    toa bpf    toa.bpf.o from the mutated bpf/toa copy   --toa-bpf-src COPY/toa.bpf.c
    tipc       tipc.ko from the mutated net/tipc copy    --tipc-ko KO
    mptcp      the whole kernel, rebuilt incrementally   --kernel path:O=
               in one O= tree (nightly: about an hour
               from scratch on 2 cores, minutes after)

kbuild caches modules and BPF objects by source hash, so a mutant built once (same id,
same base tree) is a cache hit. A build that fails makes the mutant invalid.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from knit import kbuild, kernels
from knit.kernels import Kernel
from knit.kernels import build as kernel_build
from knit.mutate import tree
from knit.mutate.catalog import Mutant

MPTCP_CONFIGS = ["base", "net", "mptcp", "tipc", "bpf"]   # src-6.12's fragments


@dataclass(frozen=True)
class Built:
    """A mutant (or the unmutated base, mutant None) ready to test."""

    pytest_args: list[str]          # options that make the suite use it
    seconds: float                  # build time when it was built (a cache hit keeps it)
    cached: bool
    artifact: str                   # the .ko, .o or O= tree
    kernel: str | None = None       # --kernel for the run; None: the engine's kernel
    extra: dict = field(default_factory=dict)


def toa(m: Mutant | None, variant: str, k: Kernel) -> Built:
    """The TOA module or BPF object, mutated by `m` (None: the checkout's own)."""
    from knit.paths import ROOT

    if m is not None:
        src = tree.mutated_copy(m, tree.base(m))
    else:
        src = ROOT / ("kmod/toa" if variant == "kmod" else "bpf/toa")
    if variant == "kmod":
        b = kbuild.build_module(src, k)
        return Built(["--toa-impl", "kmod", "--toa-reference-src", str(src)], b.seconds,
                     b.cached, str(b.path))
    b = kbuild.build_bpf(src / "toa.bpf.c")
    return Built(["--toa-impl", "bpf", "--toa-bpf-src", str(src / "toa.bpf.c")], b.seconds,
                 b.cached, str(b.path))


def tipc(m: Mutant | None, k: Kernel, ksrc: Path | None = None) -> Built:
    """tipc.ko from net/tipc of the kernel's source (mutated by `m`), against `k`'s
    headers (their config: CONFIG_TIPC=m, MEDIA_UDP, MEDIA_IB, CRYPTO as the stock one)."""
    if m is not None:
        src = tree.mutated_copy(m, tree.base(m, ksrc))
    else:
        src = (ksrc or tree.kernel_source()) / "net" / "tipc"
    b = kbuild.build_module(src, k, name="tipc")
    return Built(["--tipc-ko", str(b.path)], b.seconds, b.cached, str(b.path),
                 extra={"build_id": kbuild.build_id(b.path)})


def mptcp(m: Mutant | None, jobs: int = 0, ksrc: Path | None = None) -> Built:
    """The kernel with `m` applied in knit's working copy of linux-source-6.12, built
    incrementally into one O= tree (the last mutant's objects are reused: only the
    touched file and the link step rebuild). Sequential by construction."""
    src = ksrc or tree.kernel_source()
    work = tree.work_tree(src)
    out = kernels.cache_dir() / "mutate" / "kbuild" / src.parent.name / "out"
    stamp = out / "knit-mutant.json"
    want = {"mutant": m.id if m else None, "digest": m.digest if m else None}
    with kernels.locked(out.parent / ".build.lock"):
        _selftests_source(out, src, work)
        s = json.loads(stamp.read_text()) if stamp.exists() else {}
        if s.get("want") == want:
            return Built([], s["seconds"], True, str(out), kernel=f"path:{out}")
        stamp.unlink(missing_ok=True)
        if m is not None:
            tree.apply_in(work, src, m)
        t0 = time.monotonic()
        try:
            kernel_build.build_in(work, out, kernel_build.fragments(MPTCP_CONFIGS),
                                  jobs=jobs, label=m.id if m else "mptcp base")
        finally:
            if m is not None:
                tree.restore(work, src, m)
        seconds = round(time.monotonic() - t0, 1)
        stamp.write_text(json.dumps({"want": want, "seconds": seconds}) + "\n")
    return Built([], seconds, False, str(out), kernel=f"path:{out}")


def _selftests_source(out: Path, src: Path, work: Path) -> None:
    """build.json beside the O= tree, as `knit kernels build` writes it: the upstream
    selftests of a kernel built there come from its source package (knit.selftests), which
    the mutants never touch."""
    meta, complete = out.parent / "build.json", src.parent / "complete"
    if not complete.exists():   # not a tree knit extracted (a test's): nothing to name
        return
    revision = complete.read_text().strip()
    if not meta.exists() or json.loads(meta.read_text()).get("revision") != revision:
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"revision": revision, "tree": str(work)}) + "\n")


def build(m: Mutant | None, suite: str, variant: str, k: Kernel, jobs: int = 0) -> Built:
    """Dispatch on the suite; raises KnitError (kbuild.BuildError, KernelError) on a
    failed build, which the engine records as invalid."""
    if suite == "toa":
        return toa(m, variant, k)
    if suite == "tipc":
        return tipc(m, k)
    return mptcp(m, jobs=jobs)
