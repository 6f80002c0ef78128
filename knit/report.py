"""Reports from results files: a static HTML kernel×test matrix, and a KCIDB export."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import os
import re
from collections import defaultdict
from pathlib import Path

from knit.results import Record

COLOURS = {"passed": "#2e7d32", "flaky": "#f9a825", "failed": "#c62828", "error": "#6a1b9a",
           "skipped": "#9e9e9e", "xfailed": "#78909c", "xpassed": "#ef6c00", "known": "#1565c0"}
NO_VM = "host (no VM)"  # the column of tests that need no kernel
# KCIDB v5 test statuses: FAIL, ERROR, MISS, PASS, DONE, SKIP. A flaky test failed before it
# passed, and a known issue is a failure with an explanation: neither is a PASS (kcidb()
# gives a flaky one FAIL record per failed attempt and a PASS record for its last).
KCIDB_STATUS = {"passed": "PASS", "flaky": "FAIL", "failed": "FAIL", "error": "ERROR",
                "skipped": "SKIP", "xfailed": "PASS", "xpassed": "FAIL", "known": "FAIL"}


def matrix(records: list[Record]) -> tuple[list[str], list[str], dict]:
    """Rows (tests), columns (kernels), and the record at each cell."""
    cells: dict[tuple[str, str], Record] = {}
    kernels: list[str] = []
    tests: list[str] = []
    for r in records:
        k = column(r)
        if k not in kernels:
            kernels.append(k)
        if r.test not in tests:
            tests.append(r.test)
        cells[(r.test, k)] = r
    return sorted(tests), sorted(kernels), cells


def column(r: Record) -> str:
    """A matrix column: the kernel, and the userspace where the record names one."""
    k = r.kernel or NO_VM
    return f"{k} · {r.userspace}" if r.kernel and r.userspace else k


def _link(path: str | None, out_dir: Path) -> str | None:
    if not path:
        return None
    try:
        return os.path.relpath(path, out_dir)
    except ValueError:
        return path


def case_label(c: dict) -> str:
    return f"{c['number']} - {c['name']}"


def _case_rows(recs: list[Record | None]) -> list[str]:
    """One sub-row per TAP case of a selftest item, its outcome under each kernel."""
    by_kernel = [{case_label(c): c["outcome"] for c in (r.cases if r else [])} for r in recs]
    labels = list(dict.fromkeys(lab for cases in by_kernel for lab in cases))
    rows = []
    for lab in labels:
        tds = "".join(f"<td style='background:{COLOURS.get(cases[lab], '#fff')}'>"
                      f"<small>{cases[lab].upper()}</small></td>" if lab in cases
                      else "<td class=none>–</td>" for cases in by_kernel)
        rows.append(f"<tr class=case><th class=test>&nbsp;&nbsp;› {html.escape(lab)}</th>"
                    f"{tds}</tr>")
    return rows


def _tip(r: Record) -> str:
    tip = r.message or r.outcome
    if r.outcome == "flaky":
        tip = f"first failure: {tip}"
    if r.known:
        tip = f"known issue {r.known}; {tip}"
    return tip


def _reference_url(known: str | None) -> str | None:
    """The URL in a known issue's 'id: reference', if the reference is one."""
    m = re.search(r"https?://\S+", known or "")
    return m.group() if m else None


def html_report(records: list[Record], out: Path, title: str = "knit results") -> Path:
    tests, kernels, cells = matrix(records)
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        totals[column(r)][r.outcome] += 1
    versions = {column(r): f"{r.kernel_version or ''} {r.accel or ''}".strip()
                for r in records}
    head = "".join(f"<th>{html.escape(k)}<br><small>{html.escape(versions.get(k, ''))}"
                   f"</small></th>" for k in kernels)
    sums = "".join("<td class=sum>" + " ".join(
        f"<span style='color:{COLOURS.get(o, '#000')}'>{n}&nbsp;{o}</span>"
        for o, n in sorted(totals[k].items())) + "</td>" for k in kernels)
    rows = []
    for t in tests:
        tds = []
        for k in kernels:
            r = cells.get((t, k))
            if r is None:
                tds.append("<td class=none>–</td>")
                continue
            label = r.outcome.upper() + (f" ×{r.attempts}" if r.attempts > 1 else "")
            tip = html.escape(_tip(r), quote=True)
            link = _link(r.artifacts, out.parent)
            body = f"{label}<br><small>{r.duration:.1f}s</small>"
            if link:
                body += f"<br><a href='{html.escape(link, quote=True)}'>artifacts</a>"
            ref = _reference_url(r.known)
            if ref:
                body += f"<br><a href='{html.escape(ref, quote=True)}'>issue</a>"
            tds.append(f"<td style='background:{COLOURS.get(r.outcome, '#fff')}' "
                       f"title='{tip}'>{body}</td>")
        rows.append(f"<tr><th class=test>{html.escape(t)}</th>{''.join(tds)}</tr>")
        rows += _case_rows([cells.get((t, k)) for k in kernels])
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: center; font-size: 13px; }}
td {{ color: white; }} td a {{ color: white; }}
td.sum, td.none {{ color: black; background: #fafafa; }}
th.test {{ text-align: left; font-family: monospace; font-weight: normal; }}
tr.case th.test {{ color: #555; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(tests)} tests × {len(kernels)} kernels; generated {dt.datetime.now():%Y-%m-%d %H:%M}.
Hover a cell for the failure message; FLAKY means it passed on a retry in a fresh VM (the
message is its first failure); KNOWN means it failed the way a known kernel issue
(kernels/known-issues.toml) does.</p>
<table><tr><th>test</th>{head}</tr><tr><th class=test>totals</th>{sums}</tr>
{chr(10).join(rows)}
</table></body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def _kcidb_path(test: str) -> str:
    """'suites/mptcp/test_x.py::test_y[4]' -> 'knit.suites.mptcp.test_x.test_y.4'."""
    parts = re.split(r"[/:.\[\]-]+", test.replace(".py::", "::"))
    return "knit." + ".".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts if p)


def _attempts(r: Record) -> list[tuple[int, str, str]]:
    """(attempt, KCIDB status, comment) of each KCIDB test record that `r` gives."""
    if r.outcome != "flaky":
        comment = f"known issue {r.known}; {r.message}" if r.known else r.message
        return [(r.attempts, KCIDB_STATUS.get(r.outcome, "MISS"), comment)]
    last = max(r.attempts, 2)  # a test that reran its failed parts itself did both in one
    fails = [(n, "FAIL", r.message if n == 1 else f"failed (attempt {n} of {last})")
             for n in range(1, last)]
    return [*fails, (last, "PASS", f"passed on attempt {last} (flaky)")]


def kcidb(records: list[Record], origin: str = "knit") -> dict:
    """KCIDB v5 submission: one checkout and one build per kernel, one test per record,
    status by KCIDB_STATUS. KCIDB has no flaky status, so a flaky record gives one test per
    attempt: FAIL for each failed one (the first with its failure as the comment), PASS for
    the last. A known one is a FAIL whose comment and misc name the issue."""
    checkouts, builds, tests = {}, {}, []
    for r in records:
        ver = r.kernel_version or r.kernel or "unknown"
        key = hashlib.sha1(ver.encode()).hexdigest()[:12]
        checkouts.setdefault(key, {"id": f"{origin}:{key}", "origin": origin,
                                   "tree_name": r.kernel or "unknown",
                                   "comment": f"kernel {ver}"})
        builds.setdefault(key, {"id": f"{origin}:{key}", "checkout_id": f"{origin}:{key}",
                                "origin": origin, "architecture": "x86_64",
                                "config_name": r.kernel or "unknown", "status": "PASS",
                                "comment": f"prebuilt {ver}"})
        misc = {"nodeid": r.nodeid, "knit_outcome": r.outcome, "attempts": r.attempts,
                "userspace": r.userspace or "host"}
        if r.faults:
            misc["kernel_faults"] = r.faults
        if r.known:
            misc["known_issue"] = r.known
        base = {"build_id": f"{origin}:{key}", "origin": origin, "path": _kcidb_path(r.test),
                "start_time": dt.datetime.fromtimestamp(r.when, dt.UTC).isoformat(),
                "environment": {"comment": f"virtme-ng VM, accel {r.accel or 'unknown'}, "
                                           f"userspace {r.userspace or 'host'}"}}
        attempts = _attempts(r)
        for n, status, comment in attempts:
            salt = f"|{n}" if len(attempts) > 1 else ""  # one record keeps its old id
            rid = hashlib.sha1(f"{r.nodeid}|{r.when}{salt}".encode()).hexdigest()[:16]
            test = {**base, "id": f"{origin}:{rid}", "status": status,
                    "misc": {**misc, "attempt": n} if salt else misc}
            if n == attempts[-1][0]:
                test["duration"] = round(r.duration, 3)
            if comment:
                test["comment"] = comment[:1000]
            tests.append(test)
        for c in r.cases:  # TAP cases of a selftest item, as sub-tests of its last record
            cid = hashlib.sha1(f"{r.nodeid}|{r.when}|{c['number']}".encode()).hexdigest()[:16]
            tests.append({**base, "id": f"{origin}:{cid}",
                          "path": f"{base['path']}.{c['number']}_"
                                  + re.sub(r"[^A-Za-z0-9_]", "_", c["name"])[:60],
                          "status": KCIDB_STATUS.get(c["outcome"], "MISS"),
                          "misc": {**test["misc"], "case": case_label(c)}})
    return {"version": {"major": 5, "minor": 3}, "checkouts": list(checkouts.values()),
            "builds": list(builds.values()), "tests": tests}
