"""`knit mutate`: the options, the listing and the progress output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from knit.mutate import catalog


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mutate", help="mutation score: build deliberately broken TOA, TIPC and MPTCP "
        "variants and count how many the suites catch",
        usage="knit mutate --list [--json] | knit mutate --suite S [--limit N] [--json] "
              "[-- pytest selection]")
    p.add_argument("--list", action="store_true", help="list the catalogue (kernels/mutants)")
    p.add_argument("--suite", choices=catalog.SUITES, help="run this suite's mutants")
    p.add_argument("--all", action="store_true", help="run every suite's mutants (nightly)")
    p.add_argument("--mutant", action="append", metavar="ID", help="only this mutant "
                   "(repeatable)")
    p.add_argument("--limit", type=int, help="build and run at most N mutants not judged "
                   "before (a re-run goes on with the next ones)")
    p.add_argument("--kernel", default=None, help="the kernel the tests boot (default: "
                   "knit's default, debian-6.12, whose source the TIPC and MPTCP mutants "
                   "come from)")
    p.add_argument("--full", action="store_true", help="run every selected test on each "
                   "mutant (the whole kill matrix) instead of stopping at the first kill")
    p.add_argument("--nightly", action="store_true", help="allow the MPTCP mutants (a "
                   "kernel build per mutant)")
    p.add_argument("--workers", type=int, default=1, help="pytest -n for each run "
                   "(default 1)")
    p.add_argument("--no-upstream", dest="upstream", action="store_false", help="MPTCP: "
                   "leave out the upstream selftest items each mutant's entry names (by "
                   "default each mutant is judged by them too, apart from knit's suite)")
    p.add_argument("--jobs", type=int, default=0, help="make -j for MPTCP kernel builds")
    p.add_argument("--retries", type=int, default=1, help="--flake-retries of each run: a "
                   "kill must repeat in a fresh VM (default 1; 0 trusts one failure)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds one mutant's "
                   "pytest run may take")
    p.add_argument("--out", default="artifacts", help="where the store (mutate/), the runs "
                   "and mutation.{json,html} go (default: artifacts, beside report.html)")
    p.add_argument("--json", action="store_true", help="progress to stderr, one JSON object "
                   "last")
    p.add_argument("tests", nargs=argparse.REMAINDER, help="-- pytest selection instead of "
                   "the suite's default (e.g. -- suites/toa/test_toa_options.py)")
    p.set_defaults(func=cmd_mutate)


def _listing(mutants: list[catalog.Mutant], as_json: bool) -> None:
    if as_json:
        by: dict[str, int] = {}
        for m in mutants:
            by[m.suite] = by.get(m.suite, 0) + 1
        print(json.dumps({"count": len(mutants), "by_suite": by,
                          "mutants": [m.to_dict() for m in mutants]}))
        return
    print(f"{'SUITE':<6} {'VARIANT':<7} {'ID':<44} TARGET / BUG")
    for m in mutants:
        print(f"{m.suite:<6} {m.variant:<7} {m.id:<44} {m.target}\n{'':<59}{m.description}")
        if m.upstream:
            print(f"{'':<59}upstream: {', '.join(m.upstream)}")
    print(f"{len(mutants)} mutants")


def cmd_mutate(args: argparse.Namespace) -> int:
    from knit import kernels
    from knit.errors import KnitError

    mutants = catalog.load(suite=args.suite)
    if args.list:
        _listing(mutants, args.json)
        return 0
    if not args.suite and not args.all and not args.mutant:
        raise KnitError("knit mutate needs --list, --suite mptcp|tipc|toa, --mutant ID or "
                        "--all")
    import signal

    from knit.mutate import engine

    # SIGTERM like Ctrl-C: the running child pytest is stopped cleanly (run.pytest).
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    tests = args.tests[1:] if args.tests[:1] == ["--"] else args.tests
    s = engine.mutate(args.suite, args.kernel or kernels.default_kernel(), Path(args.out),
                      log, limit=args.limit, ids=args.mutant, nightly=args.nightly,
                      workers=args.workers, jobs=args.jobs, full=args.full,
                      tests=tests or None, timeout=args.timeout, retries=args.retries,
                      upstream=args.upstream)
    if args.json:
        print(json.dumps(s))
    else:
        for suite, c in s["by_suite"].items():
            print(f"mutate: {suite}: {c['killed']} killed, {c['survived']} survived, "
                  f"{c['invalid']} invalid, kill rate {c['kill_rate']}")
            for who in ("knit", "upstream"):
                if who in c:
                    w = c[who]
                    print(f"mutate: {suite} by {who} alone: {w['killed']} killed, "
                          f"{w['survived']} survived, {w['invalid']} invalid, kill rate "
                          f"{w['kill_rate']}")
        print(f"mutate: kill matrix {s['matrix']}, page {s['report']}")
    return 0
