"""pytest wiring for outcomes: flake retries in a fresh VM, results JSON, flake history.

Logic lives in knit.results; this module only connects it to pytest's hooks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.runner import runtestprotocol

from knit import known, ktap, results
from knit.errors import KnitError
from knit.plugin import (
    FAILED_ATTEMPTS_KEY,
    FAULTS_KEY,
    artifacts_root,
    kernel_names,
    machines_of,
    userspace_names,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("knit")
    g.addoption("--flake-retries", type=int, default=0, metavar="N",
                help="rerun a failed test up to N times, each in a fresh VM; a pass on a "
                     "retry is reported as FLAKY. A kernel fault is never retried")
    g.addoption("--strict-known", action="store_true",
                help="fail a test whose failure matches a known kernel issue, instead of "
                     "reporting it KNOWN")
    g.addoption("--known-issues", default=None, metavar="PATH",
                help="known kernel issues (default: kernels/known-issues.toml)")
    g.addoption("--until-fail", type=int, default=0, metavar="N",
                help="run each selected test up to N times, stopping at the first failure")
    g.addoption("--knit-results", default=None, metavar="PATH",
                help="JSON results file (default: <artifacts>/results.json)")
    g.addoption("--knit-history", default=None, metavar="PATH",
                help="flake history, JSON lines appended per run (default: "
                     "<artifacts>/history.jsonl)")


def _path(config: pytest.Config, opt: str, default: str) -> Path:
    value = config.getoption(opt)
    return Path(value) if value else artifacts_root(config) / default


# -- retries (on the worker that runs the test) -----------------------------------------

# A user property a test sets when it retried its own failed parts under --flake-retries
# (the upstream suite reruns only the failed TAP cases); its value is the first failure.
RETRIED_WITHIN = "retried_within"
KERNEL_FAULT = "kernel_fault"  # a report's property per kernel fault: "kind fingerprint"
KNOWN_ISSUE = "known_issue"    # the known issue a failure matched: "id: reference"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if item.config.getoption("until_fail") > 0:
        return _until_fail(item, nextitem)
    retries = item.config.getoption("flake_retries")
    if retries <= 0:
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    first_failure = ""
    props = list(item.user_properties)
    for attempt in range(retries + 1):
        item.stash[FAILED_ATTEMPTS_KEY] = attempt  # a retry keeps their artifacts
        if attempt:
            item._initrequest()  # type: ignore[attr-defined]  # fresh fixture state
            item.user_properties[:] = props  # a retry records its own properties
        item.stash[FAULTS_KEY] = []  # the kernel faults of this attempt
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        if item.stash[FAULTS_KEY]:
            break  # a verdict on the kernel, not on the test: no retry may pass it
        within = dict(item.user_properties).get(RETRIED_WITHIN)
        if within and not first_failure:
            first_failure = str(within)  # the test retried its failed parts itself
        # Such a test has had its retries: a whole rerun would repeat minutes for nothing.
        # A failed setup or teardown (state left behind) still earns a fresh VM.
        if within and not any(r.failed and r.when != "call" for r in reports):
            break
        if not any(r.failed for r in reports) or attempt == retries:
            break
        # Kept for the results: a pass on retry would otherwise lose why it failed first.
        first_failure = first_failure or next(_message(r) for r in reports if r.failed)
        for entry in machines_of(item):  # both VMs of a multi_vm test
            if not entry.vm.dirty:
                entry.vm.dirty = "flake retry: the retry gets a fresh VM"
    passed = not any(x.failed or getattr(x, "knit_known", False) for x in reports)
    for r in reports:
        r.user_properties.append(("attempts", attempt + 1))
        if first_failure and passed:
            r.knit_flaky = True  # type: ignore[attr-defined]
            r.user_properties.append(("first_failure", first_failure))
        item.ihook.pytest_runtest_logreport(report=r)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _until_fail(item: pytest.Item, nextitem: pytest.Item | None) -> bool:
    n = item.config.getoption("until_fail")
    for i in range(1, n + 1):
        if i > 1:
            item._initrequest()  # type: ignore[attr-defined]
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        # Between runs tear down only the test's own fixtures: its parent stays set up
        # (module and session fixtures, the VM); nextitem=item would keep the test's too.
        keep = nextitem if i == n else item.parent
        reports = runtestprotocol(item, nextitem=keep, log=False)  # type: ignore[arg-type]
        failed = any(r.failed or getattr(r, "knit_known", False) for r in reports)
        for r in reports:
            r.user_properties.append(("iteration", i))
            item.ihook.pytest_runtest_logreport(report=r)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if failed:
            # pytest's own session finish tears down what the early stop left set up.
            item.session.shouldstop = f"--until-fail: {item.nodeid} failed on run {i} of {n}"
            break
    return True


# Outermost (tryfirst), so knit.plugin still collects a known failure's artifacts.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    """A failed phase names the kernel faults found (kind and fingerprint) in its report,
    for results.json, JUnit and bisect, and is KNOWN if a known issue explains it."""
    rep = yield
    if rep.failed:
        for f in item.stash.get(FAULTS_KEY, []):
            rep.user_properties.append((KERNEL_FAULT, f"{f.kind} {f.fingerprint}"))
        _known(item, rep)
    return rep


def _known(item: pytest.Item, rep: pytest.TestReport) -> None:
    props = dict(item.user_properties)
    prints = [f.fingerprint for f in item.stash.get(FAULTS_KEY, [])]
    issue = known.match(item.config.stash[ISSUES], props.get("kernel"),
                        props.get("kernel_version"), failure_text(rep), prints)
    if issue is None:
        return
    rep.user_properties.append((KNOWN_ISSUE, str(issue)))
    rep.sections.append(("knit known issue", str(issue)))
    if item.config.getoption("strict_known"):
        return
    # pytest's own shape of an expected failure: not counted as failed, so exit 0 for it.
    rep.outcome = "skipped"
    rep.wasxfail = f"known issue {issue}"  # type: ignore[attr-defined]
    rep.knit_known = True  # type: ignore[attr-defined]


def failure_text(rep: pytest.TestReport) -> str:
    """What a signature is searched in: the failure's message (the E lines of its
    traceback), not the test source the traceback quotes."""
    text = rep.longreprtext or ""
    lines = [ln[2:] for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join(lines) if lines else text


@pytest.hookimpl(tryfirst=True)  # before pytest's own xfail status, which `wasxfail` asks for
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if getattr(report, "knit_known", False):
        return "known", "K", ("KNOWN", {"cyan": True})
    if getattr(report, "knit_flaky", False) and report.when == "call" and report.passed:
        return "flaky", "f", ("FLAKY", {"yellow": True})
    return None


# -- results (on the controller, or the only process) -----------------------------------

class Collector:
    def __init__(self) -> None:
        self.by_id: dict[str, results.Record] = {}
        self.started = time.time()

    def add(self, rep: pytest.TestReport) -> None:
        props = dict(rep.user_properties)
        kernel = props.get("kernel")
        rec = self.by_id.get(rep.nodeid)
        if rec is None:
            test = results.split_kernel(rep.nodeid, kernel, props.get("userspace"))
            rec = results.Record(nodeid=rep.nodeid, test=test, kernel=kernel,
                                 outcome="passed", duration=0.0)
            self.by_id[rep.nodeid] = rec
        rec.kernel_version = props.get("kernel_version", rec.kernel_version)
        rec.accel = props.get("accel", rec.accel)
        rec.userspace = props.get("userspace", rec.userspace)
        rec.attempts = props.get("attempts", rec.attempts)
        rec.cpu_wait_s = props.get("cpu_wait_s", rec.cpu_wait_s)
        rec.known = props.get(KNOWN_ISSUE, rec.known)
        rec.cases = ktap.cases_from_props(rep.user_properties) or rec.cases
        rec.faults += [v for k, v in rep.user_properties if k == KERNEL_FAULT
                       and v not in rec.faults]
        rec.duration += rep.duration
        for title, content in rep.sections:
            if title == "knit artifacts":
                rec.artifacts = content
        outcome = _outcome(rep)
        if outcome and _rank(outcome) > _rank(rec.outcome):
            rec.outcome = outcome
            rec.message = props.get("first_failure") if outcome == "flaky" else _message(rep)


def _outcome(rep: pytest.TestReport) -> str | None:
    if getattr(rep, "knit_known", False):
        return "known"
    if rep.failed:
        return "failed" if rep.when == "call" else "error"
    if rep.skipped:
        return "xfailed" if hasattr(rep, "wasxfail") else "skipped"
    if rep.when == "call":
        return "flaky" if getattr(rep, "knit_flaky", False) else "passed"
    return None


def _rank(outcome: str) -> int:
    return ["passed", "xfailed", "flaky", "skipped", "xpassed", "known", "failed",
            "error"].index(outcome)


def _message(rep: pytest.TestReport) -> str:
    if rep.skipped and isinstance(rep.longrepr, tuple):
        return str(rep.longrepr[2]).removeprefix("Skipped: ")
    text = getattr(rep, "longreprtext", "") or ""
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")] or text.splitlines()[-1:]
    return lines[0][2:].strip() if lines and lines[0].startswith("E ") else "".join(lines[:1])


COLLECTOR = pytest.StashKey[Collector]()
ISSUES = pytest.StashKey[list[known.Issue]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[COLLECTOR] = Collector()
    path = config.getoption("known_issues")
    if path and not Path(path).exists():
        raise pytest.UsageError(f"--known-issues {path}: no such file")
    try:
        config.stash[ISSUES] = known.load(Path(path)) if path else known.load()
    except KnitError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    cfg = _config
    if cfg is not None and not hasattr(cfg, "workerinput"):
        cfg.stash[COLLECTOR].add(report)


_config: pytest.Config | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _config
    _config = session.config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cfg = session.config
    if hasattr(cfg, "workerinput"):
        return
    col = cfg.stash[COLLECTOR]
    if not col.by_id:
        return
    recs = list(col.by_id.values())
    meta = {"started": col.started, "finished": time.time(), "exitstatus": int(exitstatus),
            "kernels": kernel_names(cfg), "userspaces": userspace_names(cfg),
            "workers": os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
            "args": list(cfg.invocation_params.args),
            "boots": _boots(cfg)}
    results.write_results(_path(cfg, "knit_results", "results.json"), recs, meta)
    results.append_history(_path(cfg, "knit_history", "history.jsonl"), recs)


def _boots(cfg: pytest.Config) -> dict[str, dict]:
    return results.boot_summary(artifacts_root(cfg) / "boots.jsonl",
                                cfg.stash[COLLECTOR].started, os.environ.get("KNIT_SESSION"))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    for k, b in _boots(config).items():
        terminalreporter.write_line(f"knit: {b['boots']} VM boot(s) of {k}, boot-to-ready "
                                    f"median {b['median_s']} s, max {b['max_s']} s")
    for rep in terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", []):
        for title, content in getattr(rep, "sections", []):
            if title == "knit keep-vm":
                terminalreporter.write_line(f"KEPT {rep.nodeid}: {content}", bold=True)
    for r in config.stash[COLLECTOR].by_id.values():
        if r.outcome == "known":
            terminalreporter.write_line(f"KNOWN {r.nodeid} (known issue {r.known}; "
                                        f"failed with: {r.message or '?'})", cyan=True)
    flaky = [r for r in config.stash[COLLECTOR].by_id.values() if r.outcome == "flaky"]
    for r in flaky:
        how = f"attempt {r.attempts}" if r.attempts > 1 else "a retry of its failed parts"
        terminalreporter.write_line(f"FLAKY {r.nodeid} (passed on {how}; "
                                    f"first failure: {r.message or '?'})",
                                    yellow=True)
