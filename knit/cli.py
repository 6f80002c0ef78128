"""The `knit` command: kernels, bench."""

from __future__ import annotations

import argparse
import json
import sys

from knit import kernels
from knit.errors import KnitError


def cmd_kernels(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = kernels.list_kernels()
        default = kernels.default_kernel()
        print(f"{'NAME':<14} {'VERSION':<24} CACHED")
        for r in rows:
            mark = " (default)" if r["name"] == default else ""
            if r.get("error"):
                print(f"{r['name']:<14} {'?':<24} no    {r['error']}")
            else:
                print(f"{r['name']:<14} {r['version']:<24} {'yes' if r['cached'] else 'no'}{mark}")
        return 0
    if not args.names:
        raise KnitError("knit kernels fetch needs a NAME, e.g. 'knit kernels fetch debian-6.12'")
    for name in args.names:
        kernels.fetch(name, force=args.force)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from knit import bench

    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    result = bench.run(args.kernel or kernels.default_kernel(), rounds=args.rounds, log=log)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="knit", description="kernel networking test harness")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernels", help="list or fetch kernels")
    k.add_argument("action", choices=["list", "fetch"])
    k.add_argument("names", nargs="*")
    k.add_argument("--force", action="store_true", help="fetch again even if cached")
    k.set_defaults(func=cmd_kernels)
    b = sub.add_parser("bench", help="boot and round-trip benchmark (prints JSON)")
    b.add_argument("--kernel")
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--json", action="store_true", help="progress to stderr, one JSON line last")
    b.set_defaults(func=cmd_bench)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except KnitError as e:
        print(f"knit: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
