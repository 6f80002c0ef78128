"""The kill matrix (mutant x test) as JSON and a static HTML page, written beside the
kernel matrix report (artifacts/report.html): artifacts/mutation.json and
artifacts/mutation.html. Plus the summary `knit mutate --json` prints."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from knit.mutate import verdict

COLOURS = {"passed": "#2e7d32", "flaky": "#f9a825", "failed": "#c62828", "error": "#6a1b9a",
           "skipped": "#9e9e9e", "xfailed": "#78909c", "xpassed": "#ef6c00",
           "known": "#1565c0"}
VERDICT_COLOURS = {verdict.KILLED: "#2e7d32", verdict.SURVIVED: "#c62828",
                   verdict.INVALID: "#9e9e9e"}


def _count(verdicts: list[str]) -> dict:
    c = {v: verdicts.count(v) for v in (verdict.KILLED, verdict.SURVIVED, verdict.INVALID)}
    judged = c[verdict.KILLED] + c[verdict.SURVIVED]
    c["kill_rate"] = round(c[verdict.KILLED] / judged, 3) if judged else None
    return c


def summary(entries: list[dict]) -> dict:
    """Counts over all mutants and per suite; kill rate = killed / (killed + survived),
    invalid mutants excluded. For MPTCP also each judge apart: `knit` (the suite alone)
    and `upstream` (the catalogue's upstream selftest items alone)."""
    def count(es: list[dict]) -> dict:
        c = _count([e["verdict"] for e in es])
        if any(e["suite"] == "mptcp" for e in es):
            ups = [e["upstream"] for e in es if e.get("upstream")]
            c["knit"] = _count([e.get("knit_verdict", e["verdict"]) for e in es])
            c["upstream"] = _count([u["verdict"] for u in ups])
            c["killed_by_upstream"] = c["upstream"][verdict.KILLED]
        return c

    suites = sorted({e["suite"] for e in entries})
    out = count(entries)
    out["by_suite"] = {s: count([e for e in entries if e["suite"] == s]) for s in suites}
    out["mutants"] = [{"id": e["id"], "suite": e["suite"], "verdict": e["verdict"],
                       "killed_by": e.get("killers", [])[:1], "build_s": e.get("build_s"),
                       "run_s": e.get("run_s"), "reason": e.get("reason"),
                       "equivalent": e.get("equivalent") or None,
                       **({"knit_verdict": e["knit_verdict"],
                           "upstream": {k: e["upstream"].get(k) for k in
                                        ("verdict", "items", "run_s", "reason")},
                           "upstream_killed_by": e["upstream"].get("killers", [])[:1]}
                          if e.get("upstream") else {})} for e in entries]
    return out


def matrix(entries: list[dict]) -> dict:
    """{"tests": [...], "mutants": [{id, verdict, cells: {test: outcome}}...]}."""
    tests = sorted({t for e in entries for t in e.get("cells", {})})
    return {"generated": time.strftime("%FT%TZ", time.gmtime()), "tests": tests,
            "mutants": entries}


def _cell(outcome: str | None) -> str:
    if outcome is None:
        return "<td class=none>–</td>"
    # From the mutant's side: a failing test is a kill.
    word = "KILL" if outcome in verdict.KILLING else outcome.upper()
    return (f"<td title='{html.escape(outcome)}' style='background:"
            f"{COLOURS.get(outcome, '#fff')}'><small>{word}</small></td>")


def html_page(entries: list[dict], bases: list[dict]) -> str:
    tests = sorted({t for e in entries for t in e.get("cells", {})})
    s = summary(entries)
    rows = []
    for e in entries:
        colour = VERDICT_COLOURS.get(e["verdict"], "#fff")
        tip = html.escape(e.get("description", ""))
        extra = e.get("reason") or e.get("equivalent") or ""
        if e.get("upstream"):
            extra = (f"knit {e['knit_verdict']}, upstream {e['upstream']['verdict']}"
                     + (f" · {extra}" if extra else ""))
        head = (f"<th class=m title='{tip}'>{html.escape(e['id'])}<br><small>"
                f"{html.escape(e.get('target', ''))} · build {e.get('build_s')}s · run "
                f"{e.get('run_s')}s{' · ' + html.escape(extra) if extra else ''}</small></th>"
                f"<td style='background:{colour};color:#fff'>{e['verdict'].upper()}</td>")
        rows.append(f"<tr>{head}{''.join(_cell(e['cells'].get(t)) for t in tests)}</tr>")
    cols = "".join(f"<th class=t><div>{html.escape(t.split('::')[-1])}</div></th>"
                   for t in tests)
    per = "".join(f"<li>{html.escape(k)}: {_counts(v)}"
                  + "".join(f"; {who} alone: {_counts(v[who])}" for who in ("knit", "upstream")
                            if who in v) + "</li>"
                  for k, v in s["by_suite"].items())
    ctl = "".join(f"<li>{html.escape(b['id'])}: {len(verdict.passing(_recs(b)))} of "
                  f"{len(b.get('cells', {}))} tests pass unmutated (build {b.get('build_s')}s, "
                  f"run {b.get('run_s')}s)</li>" for b in bases)
    return f"""<!doctype html><meta charset=utf-8><title>knit mutation score</title>
<style>body{{font:13px sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:2px 4px}} th.m{{text-align:left}}
th.t div{{writing-mode:vertical-rl;transform:rotate(180deg);max-height:260px}}
td{{color:#fff;text-align:center}} td.none{{color:#999}}</style>
<h1>Mutation score</h1><p>{s['killed']} killed, {s['survived']} survived, {s['invalid']}
invalid; kill rate {s['kill_rate']} (killed / judged). A cell is the test's outcome on the
mutant: KILL where it failed.</p><ul>{per}</ul><h2>Positive controls (unmutated)</h2>
<ul>{ctl}</ul><table><tr><th>mutant</th><th>verdict</th>{cols}</tr>{''.join(rows)}</table>
"""


def _counts(c: dict) -> str:
    return (f"{c['killed']} killed, {c['survived']} survived, {c['invalid']} invalid, "
            f"kill rate {c['kill_rate']}")


def _recs(e: dict) -> list[dict]:
    return [{"nodeid": n, "outcome": o} for n, o in e.get("cells", {}).items()]


def write(entries: list[dict], bases: list[dict], out: Path) -> tuple[Path, Path]:
    """artifacts/mutation.json and artifacts/mutation.html."""
    out.mkdir(parents=True, exist_ok=True)
    js, page = out / "mutation.json", out / "mutation.html"
    js.write_text(json.dumps({**matrix(entries), "bases": bases,
                              "summary": summary(entries)}, indent=1) + "\n")
    page.write_text(html_page(entries, bases))
    return js, page
