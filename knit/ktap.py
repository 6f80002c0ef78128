"""(K)TAP results of kselftest scripts: 'ok N - name', 'not ok N - name', '# SKIP'."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

LINE = re.compile(r"^\s*(not ok|ok) (\d+)(?: - ([^#]*?))?\s*(?:#\s*(.*))?$")


@dataclass(frozen=True)
class Case:
    number: int
    name: str
    outcome: str       # passed | failed | skipped | flaky (mptcp_lib's '# IGNORE Flaky', or
                       # passed on a retry)
    directive: str = ""


def parse(text: str) -> list[Case]:
    """Every TAP result line in `text`; other output is ignored."""
    cases = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        status, num, name, directive = m.group(1), int(m.group(2)), m.group(3) or "", \
            (m.group(4) or "").strip()
        if status == "not ok":
            outcome = "failed"
        elif re.search(r"\bSKIP\b", directive, re.I) or re.search(r"#\s*SKIP\b", line):
            outcome = "skipped"
        elif "IGNORE" in line:
            outcome = "flaky"
        else:
            outcome = "passed"
        cases.append(Case(num, name.strip(), outcome, directive))
    return cases


def merge_retry(first: list[Case], retry: list[Case]) -> list[Case]:
    """`first` with each failed case judged again by its rerun, matched by name (a rerun
    numbers its cases from 1): passed on the rerun is 'flaky', anything else stays 'failed'."""
    again = {c.name: c for c in retry}
    out = []
    for c in first:
        r = again.get(c.name)
        if c.outcome == "failed" and r is not None and r.outcome in ("passed", "flaky"):
            c = replace(c, outcome="flaky", directive=f"passed on retry; {c.directive}".strip("; "))
        out.append(c)
    return out


def join_groups(script: str) -> dict[str, str]:
    """mptcp_join.sh's test groups, option -> name, read from its all_tests_sorted array."""
    block = re.search(r"all_tests_sorted=\((.*?)\)", script, re.S)
    if not block:
        return {}
    return dict(re.findall(r"(\S)@(\w+?)_tests", block.group(1)))


PROP = re.compile(r"^case (\d+) - (.*)$")


def prop_name(case: Case) -> str:
    """The JUnit property name of a case; its value is the outcome."""
    return f"case {case.number} - {case.name}"


def cases_from_props(props: list[tuple[str, object]]) -> list[dict]:
    """The cases recorded as JUnit properties, back as dicts for results.json."""
    out = []
    for key, value in props:
        m = PROP.match(str(key))
        if m:
            out.append({"number": int(m.group(1)), "name": m.group(2), "outcome": value})
    return out
