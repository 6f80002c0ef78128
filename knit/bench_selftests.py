"""`knit bench --selftests GROUPS`: mptcp_join.sh groups run directly in plain vng VMs, one
after the other as a person would, then as knit's pytest items with `-n`; per-case
verdicts and wall times compared in one run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from knit import accel, kernels, ktap, selftests, vngcmd
from knit.bench import VNG_RAN
from knit.errors import KnitError

TARGET = selftests.MPTCP
SCRIPT = "mptcp_join.sh"
PLAN = re.compile(r"^\s*1\.\.(\d+)\s*$", re.M)   # TAP's plan: how many results follow


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


def group_cases(o: str, rc: int, output: str) -> list[ktap.Case]:
    """The TAP cases of one direct `vng -- ./mptcp_join.sh -<o>` run; a KnitError unless
    vng ran it to the end: a known exit code, at least one case, as many as the plan."""
    cases = ktap.parse(output)
    plan = [int(n) for n in PLAN.findall(output)]
    if rc not in VNG_RAN or not cases or (plan and len(cases) != plan[-1]):
        got = f"{len(cases)} of {plan[-1]}" if plan else f"{len(cases)}"
        raise KnitError(f"direct -{o}: vng exited {rc} with {got} TAP cases, so it did not "
                        f"run the group through; its last line: {_last_line(output)}")
    return cases


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
        try:
            p = subprocess.run(vngcmd.build(spec), stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise KnitError(f"direct -{o}: vng still running after {timeout:.0f}s "
                            "(the selftest's own timeout, scaled for the accelerator)") from None
        cases = group_cases(o, p.returncode, p.stdout + p.stderr)
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
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        if p.returncode not in (0, 1):   # 0/1: the items ran (and passed or failed)
            raise KnitError(f"knit's pytest -n {workers} exited {p.returncode}, so its items "
                            f"did not run; its last line: {_last_line(p.stdout + p.stderr)}")
        verdicts, _ = knit_verdicts(out, groups, log)
    return verdicts, seconds


def knit_verdicts(path: Path, groups: dict[str, str],
                  log: Callable[[str], None]) -> tuple[dict[str, str], float]:
    """Per-case verdicts of the join groups in a knit results.json, and its wall time; a
    KnitError unless every group has an item there with at least one case."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise KnitError(f"no knit results to compare with in {path}: {e}") from None
    by_group = {g: o for o, g in groups.items()}
    verdicts: dict[str, str] = {}
    for t in data.get("tests", []):
        group = t["test"].rsplit("mptcp_join-", 1)[-1].rstrip("]")  # "test": no kernel
        if group not in by_group:
            continue
        for c in t.get("cases") or []:
            verdicts[f"-{by_group[group]} {c['number']} {c['name']}"] = c["outcome"]
        log(f"knit {t['nodeid']}: {t['outcome']}, {len(t.get('cases') or [])} cases")
    empty = [g for o, g in groups.items() if not any(c.startswith(f"-{o} ") for c in verdicts)]
    if empty:
        raise KnitError(f"{path}: no cases of mptcp_join group(s) {', '.join(empty)}: "
                        "did that run select them (suites/upstream, -k mptcp_join)?")
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
