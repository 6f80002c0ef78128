"""`knit bench --selftests GROUPS`: mptcp_join.sh groups run directly in plain vng VMs, one
after the other as a person would, then as knit's pytest items with `-n`; per-case
verdicts and wall times compared in one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from knit import accel, kernels, ktap, selftests, vngcmd

TARGET = selftests.MPTCP
SCRIPT = "mptcp_join.sh"


def _groups(tree: selftests.Tree, opts: list[str]) -> dict[str, str]:
    """option -> group name, as suites/upstream names its items."""
    known = ktap.join_groups((tree.target_dir(TARGET) / SCRIPT).read_text())
    unknown = [o for o in opts if o not in known]
    if unknown:
        raise SystemExit(f"knit bench: no mptcp_join group {unknown}; known: {''.join(known)}")
    return {o: known[o] for o in opts}


def direct(k: kernels.Kernel, where: Path, opts: list[str], timeout: float,
           log: Callable[[str], None],
           per_group: dict[str, float] | None = None) -> tuple[dict[str, str], float]:
    """Each group in its own `vng -- ./mptcp_join.sh -X`, serially; verdicts by case
    (and each group's seconds into `per_group`)."""
    acc = accel.choose(k.image)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    verdicts: dict[str, str] = {}
    t0 = time.monotonic()
    for o in opts:
        # With stdin not a terminal, vng shows the command's output only on the console
        # (--verbose, on stderr) and exits 255 whatever the command did: verdicts come
        # from the TAP lines alone.
        spec = vngcmd.VngSpec(image=k.image, command=[f"./{SCRIPT}", f"-{o}"], accel=acc,
                              cwd=where, verbose=True)
        g0 = time.monotonic()
        p = subprocess.run(vngcmd.build(spec), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=env, timeout=timeout)
        cases = ktap.parse(p.stdout + p.stderr)
        verdicts.update({f"-{o} {c.number} {c.name}": c.outcome for c in cases})
        took = time.monotonic() - g0
        if per_group is not None:
            per_group[o] = round(took, 1)
        log(f"direct -{o}: {len(cases)} cases, {took:.0f}s")
    return verdicts, time.monotonic() - t0


def via_knit(kernel: str, groups: dict[str, str], workers: int,
             log: Callable[[str], None]) -> tuple[dict[str, str], float]:
    """The same groups as suites/upstream items under pytest -n; verdicts by case."""
    with tempfile.TemporaryDirectory(prefix="knit-bench-") as tmp:
        out = Path(tmp) / "results.json"
        expr = " or ".join(f"mptcp_join-{g}-" for g in groups.values())  # ids end -<kernel>
        argv = [sys.executable, "-m", "pytest", "suites/upstream", "-k", expr,
                "-n", str(workers), "--kernel", kernel, "--knit-results", str(out),
                "--knit-artifacts", str(Path(tmp) / "art"), "-p", "no:randomly", "-q"]
        t0 = time.monotonic()
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        verdicts, _ = knit_verdicts(out, groups, log)
    return verdicts, seconds


def knit_verdicts(path: Path, groups: dict[str, str],
                  log: Callable[[str], None]) -> tuple[dict[str, str], float]:
    """Per-case verdicts of the join groups in a knit results.json, and its wall time."""
    data = json.loads(path.read_text()) if path.exists() else {}
    by_group = {g: o for o, g in groups.items()}
    verdicts: dict[str, str] = {}
    for t in data.get("tests", []):
        group = t["test"].rsplit("mptcp_join-", 1)[-1].rstrip("]")  # "test": no kernel
        if group not in by_group:
            continue
        for c in t.get("cases") or []:
            verdicts[f"-{by_group[group]} {c['number']} {c['name']}"] = c["outcome"]
        log(f"knit {t['nodeid']}: {t['outcome']}, {len(t.get('cases') or [])} cases")
    meta = data.get("meta", {})
    return verdicts, meta.get("finished", 0) - meta.get("started", 0)


def run(kernel: str, opts: list[str], workers: int = 2,
        log: Callable[[str], None] = print, knit_results: Path | None = None) -> dict:
    """Direct serial run, then knit's (or read knit's from an earlier `knit_results`)."""
    k = kernels.ensure(kernel)
    tree = selftests.fetch(k)
    where = selftests.build(tree, TARGET)
    if opts == ["all"]:
        opts = list(ktap.join_groups((tree.target_dir(TARGET) / SCRIPT).read_text()))
    groups = _groups(tree, opts)
    timeout = tree.timeout(TARGET) * (5 if accel.choose(k.image) == "tcg" else 1)
    per_group: dict[str, float] = {}
    d, d_s = direct(k, where, opts, timeout, log, per_group)
    if knit_results is not None:
        n, n_s = knit_verdicts(knit_results, groups, log)
    else:
        n, n_s = via_knit(kernel, groups, workers, log)
    differ = sorted(c for c in set(d) | set(n) if d.get(c) != n.get(c))
    return {"kernel": kernel, "version": k.version, "groups": "".join(opts),
            "cases": len(d), "direct_s": round(d_s, 1), "knit_s": round(n_s, 1),
            "workers": workers, "speedup": round(d_s / n_s, 2) if n_s else None,
            "knit_results": str(knit_results) if knit_results else None,
            "direct_group_s": per_group,
            "differ": [{"case": c, "direct": d.get(c), "knit": n.get(c)} for c in differ]}
