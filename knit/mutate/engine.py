"""`knit mutate`: for each mutant of the catalogue, build it, run its suite's tests against
it, and record killed / survived / invalid; then the kill matrix.

Each (suite, variant) first runs its unmutated base with the same selection: the positive
control. Tests that do not pass there are deselected for the mutants, so only a test that
tells the base from the mutant can kill it. Verdicts are stored after every mutant and
keyed by mutant, base tree and selection (store.py): a re-run skips what it already knows,
except survivors (and the base) when the suite's test code changed since.

MPTCP mutants are judged twice: by knit's suite, and by the upstream net/mptcp selftest
items their catalogue entry names (mptcp_join groups, pm_netlink...), each against its
own positive control (the union of those items on the unmutated kernel). A mutant is
killed when either kills it; the summary keeps both verdicts, so the two can be compared.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from knit import kbuild, kernels
from knit.errors import KnitError
from knit.mutate import build, catalog, report, run, store, verdict
from knit.mutate.catalog import Mutant
from knit.paths import ROOT

Log = Callable[[str], None]
NIGHTLY_SUITES = {"mptcp"}   # a kernel build per mutant: ci/nightly.sh runs them


def load() -> str:
    """The host's load averages, as `uptime` shows them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _selection(suite: str, variant: str, kernel: str, tests: list[str] | None,
               full: bool, retries: int = 1) -> tuple[list[str], str]:
    """The pytest selection, and its key: kernel and arguments."""
    args = list(tests) if tests else list(run.DEFAULT_SELECTION[suite])
    return args, store.selection_key(kernel, [*args, variant, f"retries={retries}",
                                              "full" if full else "first-kill"])


def tests_hash(suite: str) -> str:
    """The suite's test code (suites/<suite>, or suites/upstream): a survivor (and the
    base) is judged again after it changed, so a sharpened test gets its chance; a kill
    stands."""
    return kbuild.source_hash(ROOT / "suites" / suite)[:12]


def _base_hash(suite: str, variant: str, mutants: list[Mutant]) -> str:
    from knit.mutate import tree

    if suite == "toa":
        return kbuild.source_hash(ROOT / ("kmod/toa" if variant == "kmod" else "bpf/toa"))[:16]
    return tree.base(mutants[0]).hash


class Engine:
    def __init__(self, kernel: str, out: Path, log: Log, workers: int = 1, jobs: int = 0,
                 full: bool = False, tests: list[str] | None = None,
                 timeout: float = 3600, retries: int = 1, upstream: bool = True) -> None:
        self.kernel_name = kernel
        self.out = out
        self.log = log
        self.workers = workers
        self.jobs = jobs
        self.full = full
        self.tests = tests
        self.timeout = timeout
        # A kill must repeat: a test that fails once and passes in a fresh VM is flaky,
        # which counts as passed (verdict.py).
        self.retries = retries
        self.upstream = upstream   # MPTCP: also judge by the catalogue's upstream items
        self.store = store.Store(out / "mutate" / "store.json")
        self._kernel: kernels.Kernel | None = None

    @property
    def kernel(self) -> kernels.Kernel:
        if self._kernel is None:
            self._kernel = kernels.ensure(self.kernel_name)
        return self._kernel

    def _run(self, ident: str, m: Mutant | None, suite: str, variant: str,
             args: list[str], deselect: list[str], tests_of: str | None = None) -> dict:
        """Build, then test; the entry that goes into the store."""
        entry: dict = {"id": ident, "suite": suite, "variant": variant,
                       "kernel": self.kernel_name, "tests_hash": tests_hash(tests_of or suite),
                       "started": time.time(), "load_before": load()}
        if m is not None:
            entry.update(description=m.description, target=m.target, digest=m.digest,
                         equivalent=m.equivalent)
        try:
            b = build.build(m, suite, variant, self.kernel, jobs=self.jobs)
        except KnitError as e:
            entry.update(verdict=verdict.INVALID, reason=f"build failed: "
                         f"{str(e).splitlines()[0]}", build_s=None, run_s=None,
                         cells={}, killers=[], finished=time.time(), load_after=load())
            return entry
        entry.update(build_s=b.seconds, build_cached=b.cached, artifact=b.artifact, **b.extra)
        stop = [] if self.full or m is None else ["-x"]
        retry = ["--flake-retries", str(self.retries)] if self.retries else []
        argv = [*args, *b.pytest_args, *stop, *retry,
                *[a for n in deselect for a in ("--deselect", n)]]
        r = run.pytest(argv, b.kernel or self.kernel_name,
                       self.out / "mutate" / "runs" / ident, self.workers, self.timeout)
        v, killers = verdict.classify(r.tests)
        entry.update(verdict=v, killers=killers, run_s=r.seconds, rc=r.rc, log=str(r.log),
                     cells={t["nodeid"]: verdict.outcome(t) for t in r.tests},
                     messages={t["nodeid"]: t.get("message", "")[:300] for t in r.tests
                               if t["nodeid"] in killers},
                     finished=time.time(), load_after=load())
        if v == verdict.INVALID:
            entry["reason"] = f"pytest exit {r.rc}, {len(r.tests)} results: see {r.log}"
        return entry

    def base(self, suite: str, variant: str, mutants: list[Mutant]) -> dict:
        """The unmutated base's run (cached like a mutant's): the positive control."""
        args, sel = _selection(suite, variant, self.kernel_name, self.tests, self.full,
                               self.retries)
        ident = f"base-{suite}-{variant}"
        k = store.key(ident, "-", _base_hash(suite, variant, mutants), sel)
        hit = self.store.get(k)
        if hit is not None and hit.get("tests_hash") == tests_hash(suite):
            self.log(f"mutate: {ident}: known from an earlier run "
                     f"({len(verdict.passing(_records(hit)))} tests pass)")
            return hit
        self.log(f"mutate: {ident}: building and running the unmutated source "
                 f"(positive control); load {load()}")
        e = self._run(ident, None, suite, variant, args, [])
        e["verdict"] = "control"   # the base is not a mutant: its passing tests matter
        passing = verdict.passing(_records(e))
        if not passing:
            raise KnitError(f"the unmutated {suite} {variant} passes no test of "
                            f"{' '.join(args)} ({e.get('reason', 'see the log')}): fix "
                            "the suite or the selection first")
        self.store.put(k, e)
        self.log(f"mutate: {ident}: {len(passing)} passed of {len(e['cells'])} in "
                 f"{e['run_s']:.0f}s (build {e['build_s']}s); load {e['load_after']}")
        return e

    def mutant(self, m: Mutant, base: dict, i: int, n: int) -> tuple[dict, bool]:
        """(entry, ran): the mutant's verdict, from the store or from a run now."""
        args, sel = _selection(m.suite, m.variant, self.kernel_name, self.tests, self.full,
                               self.retries)
        k = store.key(m.id, m.digest, _base_hash(m.suite, m.variant, [m]), sel)
        hit = self.store.get(k)
        if hit is not None and (hit["verdict"] != verdict.SURVIVED
                                or hit.get("tests_hash") == tests_hash(m.suite)):
            self.log(f"mutate: [{i}/{n}] {m.id}: {hit['verdict']} (earlier run)")
            return hit, False
        if hit is not None:
            self.log(f"mutate: [{i}/{n}] {m.id}: survived before; suites/{m.suite} changed "
                     "since, judging it again")
        failing = sorted(set(base["cells"]) - set(verdict.passing(_records(base))))
        self.log(f"mutate: [{i}/{n}] {m.id}: building; load {load()}")
        e = self._run(m.id, m, m.suite, m.variant, args, failing)
        self.store.put(k, e)
        by = f" by {e['killers'][0]}" if e["killers"] else ""
        self.log(f"mutate: [{i}/{n}] {m.id}: {e['verdict'].upper()}{by} "
                 f"(build {e['build_s']}s, run {e.get('run_s')}s){_reason(e)}")
        return e, True

    def _upstream_key(self, ident: str, digest: str, items: list[str],
                      mutants: list[Mutant]) -> str:
        args = run.upstream_selection(items)
        sel = store.selection_key(self.kernel_name, [*args, f"retries={self.retries}",
                                                     "full" if self.full else "first-kill"])
        return store.key(ident, digest, _base_hash("mptcp", "kernel", mutants), sel)

    def upstream_base(self, mutants: list[Mutant]) -> dict | None:
        """The upstream items of `mutants` on the unmutated kernel: their positive control.
        None when no mutant names any."""
        items = sorted({i for m in mutants for i in m.upstream})
        if not items:
            return None
        ident = "base-mptcp-upstream"
        k = self._upstream_key(ident, "-", items, mutants)
        hit = self.store.get(k)
        if hit is not None and hit.get("tests_hash") == tests_hash("upstream"):
            self.log(f"mutate: {ident}: known from an earlier run "
                     f"({len(verdict.passing(_records(hit)))} of {len(items)} items pass)")
            return hit
        self.log(f"mutate: {ident}: running {', '.join(items)} on the unmutated kernel "
                 f"(positive control); load {load()}")
        e = self._run(ident, None, "mptcp", "kernel", run.upstream_selection(items), [],
                      tests_of="upstream")
        e.update(verdict="control", items=items)
        self.store.put(k, e)
        self.log(f"mutate: {ident}: {len(verdict.passing(_records(e)))} passed of "
                 f"{len(e['cells'])} in {e['run_s']}s; load {e['load_after']}")
        return e

    def upstream_mutant(self, m: Mutant, base: dict, i: int, n: int) -> tuple[dict, bool]:
        """(entry, ran): the verdict of `m`'s upstream items on it, judged by those that
        passed on the unmutated kernel."""
        items = list(m.upstream)
        k = self._upstream_key(f"{m.id}+upstream", m.digest, items, [m])
        hit = self.store.get(k)
        if hit is not None and (hit["verdict"] != verdict.SURVIVED
                                or hit.get("tests_hash") == tests_hash("upstream")):
            self.log(f"mutate: [{i}/{n}] {m.id}: upstream {hit['verdict']} (earlier run)")
            return hit, False
        passing = set(verdict.passing(_records(base)))
        mine = [node for node in base.get("cells", {})
                if any(f"[{it}-" in node for it in items)]
        if not set(mine) & passing:
            e = {"id": f"{m.id}+upstream", "verdict": verdict.INVALID, "items": items,
                 "killers": [], "cells": {}, "run_s": None, "finished": time.time(),
                 "reason": f"none of {', '.join(items)} passed on the unmutated kernel"}
            self.log(f"mutate: [{i}/{n}] {m.id}: upstream INVALID: {e['reason']}")
            return e, False
        self.log(f"mutate: [{i}/{n}] {m.id}: upstream {', '.join(items)}; load {load()}")
        e = self._run(f"{m.id}+upstream", m, "mptcp", "kernel", run.upstream_selection(items),
                      sorted(set(mine) - passing), tests_of="upstream")
        e["items"] = items
        self.store.put(k, e)
        by = f" by {e['killers'][0]}" if e["killers"] else ""
        self.log(f"mutate: [{i}/{n}] {m.id}: upstream {e['verdict'].upper()}{by} "
                 f"(run {e.get('run_s')}s){_reason(e)}")
        return e, True


def combine(knit: dict, up: dict | None) -> dict:
    """One mutant's entry for the report: knit's verdict and the upstream one side by side
    (`knit_verdict`, `upstream`), and killed when either killed it. A mutant knit could
    not run (invalid) stays invalid."""
    if up is None:
        return knit
    e = {**knit, "knit_verdict": knit["verdict"],
         "upstream": {k: up.get(k) for k in ("verdict", "items", "killers", "run_s",
                                             "reason", "log")},
         "cells": {**knit.get("cells", {}), **up.get("cells", {})},
         "killers": [*knit.get("killers", []), *up.get("killers", [])]}
    if knit["verdict"] != verdict.INVALID and up["verdict"] == verdict.KILLED:
        e["verdict"] = verdict.KILLED
    return e


def _records(entry: dict) -> list[dict]:
    return [{"nodeid": n, "outcome": o} for n, o in entry.get("cells", {}).items()]


def _reason(e: dict) -> str:
    return f": {e['reason']}" if e.get("reason") else ""


def mutate(suite: str | None, kernel: str, out: Path, log: Log, limit: int | None = None,
           ids: list[str] | None = None, nightly: bool = False, **kw) -> dict:
    """Run the catalogue (one suite, or all), at most `limit` new mutants this time;
    returns the summary `knit mutate --json` prints, and writes the kill matrix."""
    mutants = catalog.load(suite=suite)
    if ids:
        unknown = sorted(set(ids) - {m.id for m in mutants})
        if unknown:
            raise KnitError(f"no mutant {', '.join(unknown)} in the catalogue: see "
                            "'knit mutate --list'")
        mutants = [m for m in mutants if m.id in ids]
    later = sorted({m.suite for m in mutants} & NIGHTLY_SUITES)
    if later and not nightly:
        raise KnitError(f"{', '.join(later)} mutants need a kernel built from source per "
                        "mutant (hours on 2 cores): add --nightly (ci/nightly.sh does), or "
                        "pick --suite toa or tipc")
    eng = Engine(kernel, out, log, **kw)
    entries: list[dict] = []
    groups: dict[tuple[str, str], list[Mutant]] = {}
    for m in mutants:
        groups.setdefault((m.suite, m.variant), []).append(m)
    ran, i, t0 = 0, 0, time.monotonic()
    for (s, variant), ms in groups.items():
        base = up_base = None
        for m in ms:
            i += 1
            if limit is not None and ran >= limit:
                continue
            if base is None:
                base = eng.base(s, variant, ms)
                # Both controls on the base build, before the tree holds a mutant: one
                # kernel build per mutant then serves both of its runs.
                up_base = eng.upstream_base(ms) if eng.upstream else None
            e, did = eng.mutant(m, base, i, len(mutants))
            u = None
            if up_base is not None and m.upstream and e["verdict"] != verdict.INVALID:
                u, up_did = eng.upstream_mutant(m, up_base, i, len(mutants))
                did = did or up_did
            ran += did
            entries.append(combine(e, u))
    bases = [e for e in eng.store.latest().values() if e["id"].startswith("base-")]
    paths = report.write(entries, bases, out)
    summary = report.summary(entries)
    summary.update(wall_s=round(time.monotonic() - t0, 1), ran=ran,
                   not_run=len(mutants) - len(entries), report=str(paths[1]),
                   matrix=str(paths[0]))
    return summary
