"""The `knit` command: kernels, shell, bench, flakes, report, mutate."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

from knit import kernels, rootfs
from knit.errors import KnitError


def cmd_kernels(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = kernels.list_kernels(update=args.update)
        default = kernels.default_kernel()
        print(f"{'NAME':<15} {'VERSION':<22} {'SUITE':<18} {'PACKAGE':<42} CACHED")
        for r in rows:
            mark = " (default)" if r["name"] == default else ""
            if r.get("error"):
                print(f"{r['name']:<15} {'?':<22} {'-':<18} {'-':<42} no    {r['error']}")
            else:
                print(f"{r['name']:<15} {r['version']:<22} {r.get('suite') or '-':<18} "
                      f"{r.get('package') or '-':<42} {'yes' if r['cached'] else 'no'}{mark}")
        return 0
    if not args.names:
        raise KnitError(f"knit kernels {args.action} needs a NAME, e.g. "
                        f"'knit kernels {args.action} debian-6.12'")
    for name in args.names:
        spec = kernels.load_catalog().get("kernel", {}).get(name)
        if args.action == "build" or (spec or {}).get("source") == "build":
            cmd_build(name, spec, args)
        else:
            kernels.fetch(name, force=args.force)
    return 0


def cmd_rootfs(args: argparse.Namespace) -> int:
    names = args.releases or ([rootfs.DEFAULT] if args.action == "build" else
                              list(rootfs.RELEASES))
    if args.action == "build":
        for r in names:
            path = rootfs.build(r, force=args.force)
            print(f"{r}: {path}")
        return 0
    print(f"{'RELEASE':<10} {'BUILT':<6} {'SECONDS':<8} {'MIB':<6} PATH")
    for r in names:
        d = rootfs.describe(r)
        print(f"{r:<10} {'yes' if d['built'] else 'no':<6} {d.get('seconds', '-')!s:<8} "
              f"{round(d['bytes'] / 2**20) if 'bytes' in d else '-'!s:<6} {d['path']}")
    return 0


def cmd_build(name: str, spec: dict | None, args: argparse.Namespace) -> None:
    from knit.kernels import build as kernel_build

    if spec is None and not args.tree:
        raise KnitError(f"{name} is not in kernels/kernels.toml: give its source with --tree")
    spec = dict(spec or {})
    if args.configs:
        spec["configs"] = args.configs.split(",")
    if args.debug:
        spec["configs"] = [*spec.get("configs", kernel_build.DEFAULT_CONFIGS), "debug"]
    tree = Path(args.tree) if args.tree else (Path(spec["tree"]) if "tree" in spec else None)
    r = kernel_build.build(name, spec, tree=tree, jobs=args.jobs, force=args.force)
    print(f"{name}: {r.version} in {r.out} ({'cached, ' if r.cached else ''}"
          f"built in {r.seconds:.0f}s); use --kernel {name}")
    for opt in r.dropped:
        print(f"{name}: not kept by kconfig: {opt}")


def cmd_bisect(args: argparse.Namespace) -> int:
    from knit import bisect

    test = args.test[1:] if args.test[:1] == ["--"] else args.test
    return bisect.run(Path(args.tree), args.good, args.bad, test, args.configs.split(","),
                      jobs=args.jobs)


def cmd_bench(args: argparse.Namespace) -> int:
    from knit import bench

    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    kernel = args.kernel or kernels.default_kernel()
    if args.suite:
        from knit import bench_suite
        workers = [int(w) for w in str(args.workers).split(",")]
        result = bench_suite.run(args.suite, workers, kernel, log=log)
    elif args.selftests:
        from knit import bench_selftests
        groups = ["all"] if args.selftests == "all" else list(args.selftests)
        result = bench_selftests.run(kernel, groups, int(args.workers), log=log,
                                     knit_results=Path(args.knit_results)
                                     if args.knit_results else None)
    else:
        result = bench.run(kernel, rounds=args.rounds, log=log, userspace=args.userspace)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


def cmd_selftests(args: argparse.Namespace) -> int:
    from knit import selftests

    k = kernels.ensure(args.kernel or kernels.default_kernel())
    tree = selftests.fetch(k)
    for target in args.target or [selftests.MPTCP]:
        where = selftests.build(tree, target)
        print(f"{k.name}: {target} selftests of {tree.source_version} built in {where}")
    return 0


def cmd_flakes(args: argparse.Namespace) -> int:
    from knit import results

    rows = results.flake_summary(Path(args.history))
    if not rows:
        print(f"no history in {args.history}: run pytest first")
        return 0
    print(f"{'RUNS':>5} {'FAILS':>5} {'FLAKY':>5}  {'LAST FAILURE':<19}  TEST")
    for r in rows:
        when = (dt.datetime.fromtimestamp(r["last_failure"]).strftime("%Y-%m-%d %H:%M:%S")
                if r["last_failure"] else "-")
        print(f"{r['runs']:>5} {r['fails']:>5} {r['flaky']:>5}  {when:<19}  {r['nodeid']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from knit import report, results

    records = []
    for f in args.results:
        if not Path(f).exists():
            raise KnitError(f"{f} not found: run pytest first (it writes artifacts/results.json)")
        records += results.read_results(Path(f))[1]
    out = report.html_report(records, Path(args.output))
    print(f"wrote {out} ({len(records)} results)")
    if args.kcidb:
        Path(args.kcidb).write_text(json.dumps(report.kcidb(records), indent=1) + "\n")
        print(f"wrote {args.kcidb} (KCIDB v5.3)")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    import tempfile

    from knit import accel, shell
    from knit.vm import VM, VMConfig

    topo = shell.load_topology(args.topology) if args.topology else None
    k = kernels.ensure(args.kernel or kernels.default_kernel())
    us = rootfs.get(args.userspace)
    acc = args.accel or accel.choose(k.image)
    with tempfile.TemporaryDirectory(prefix="knit-shell-") as tmp:
        vm = VM(VMConfig(kernel=k, accel=acc, workdir=Path(tmp), cpus=args.cpus, userspace=us,
                         rodirs=(kernels.cache_dir(),)))
        print(f"knit: booting {k.name} ({k.version}) on {us.name} under {acc.upper()}...",
              file=sys.stderr)
        try:
            vm.boot()
            print(f"knit: ready in {vm.boot_s:.0f}s; console log {vm.console}", file=sys.stderr)
            if topo:
                vm.call("knit.guest.netns:build", topology=topo.to_dict())
                nodes = ", ".join(topo.names)
                print(f"knit: topology built, nodes {nodes}; enter one with "
                      "'ip netns exec NODE bash' or start with --ns NODE", file=sys.stderr)
            print("knit: exit the shell to stop the VM", file=sys.stderr)
            return shell.interactive(vm, ns=args.ns)
        finally:
            vm.stop()


def cmd_attach(args: argparse.Namespace) -> int:
    from knit import shell
    from knit.vm import VM, VMConfig

    d = Path(args.dir)
    try:
        meta = json.loads((d / "vm.json").read_text())
    except OSError as e:
        raise KnitError(f"{d} is not a kept knit VM (no vm.json): start one with "
                        "pytest --keep-vm") from e
    k = kernels.Kernel(name=meta["kernel"], version=meta["version"], image=Path(meta["image"]))
    us = meta.get("userspace", "host")
    userspace = rootfs.HOST if us == "host" else rootfs.Userspace(us, rootfs.tree_dir(us) / "root")
    vm = VM.attach(d, VMConfig(kernel=k, accel=meta["accel"], workdir=d, userspace=userspace))
    if args.stop:
        vm.request("poweroff", 10)
        shutil.rmtree(d, ignore_errors=True)
        print(f"knit: {meta['kernel']} VM powered off", file=sys.stderr)
        return 0
    print(f"knit: attached to {meta['kernel']} ({meta['version']}); console {meta['console']};"
          f" 'knit attach {d} --stop' powers it off", file=sys.stderr)
    try:
        return shell.interactive(vm, ns=args.ns)
    finally:
        vm.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="knit", description="kernel networking test harness")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernels", help="list, fetch or build kernels")
    k.add_argument("action", choices=["list", "fetch", "build"])
    k.add_argument("names", nargs="*")
    k.add_argument("--force", action="store_true", help="fetch or build again even if cached")
    k.add_argument("--update", action="store_true", help="list: refresh knit's apt lists first")
    k.add_argument("--tree", help="build: a local kernel git tree instead of Debian's source")
    k.add_argument("--configs", help="build: fragments of kernels/configs, e.g. base,net,mptcp")
    k.add_argument("--debug", action="store_true", help="build: add debug.config (KASAN, "
                   "kmemleak, lockdep)")
    k.add_argument("--jobs", type=int, default=0, help="build: make -j (default: all cores)")
    k.set_defaults(func=cmd_kernels)
    r = sub.add_parser("rootfs", help="build or list the guest userspaces (root trees)")
    r.add_argument("action", choices=["build", "list"])
    r.add_argument("releases", nargs="*", choices=[*rootfs.RELEASES, []], metavar="RELEASE",
                   help="trixie or bookworm (build: default trixie; list: all)")
    r.add_argument("--force", action="store_true", help="build again even if cached")
    r.set_defaults(func=cmd_rootfs)
    b = sub.add_parser("bench", help="boot and round-trip benchmark (prints JSON)")
    b.add_argument("--kernel")
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--userspace", default=rootfs.DEFAULT, choices=rootfs.RELEASES,
                   help="the guest root tree whose boot is compared with the host's /")
    b.add_argument("--json", action="store_true", help="progress to stderr, one JSON line last")
    b.add_argument("--selftests", metavar="GROUPS",
                   help="instead: mptcp_join groups (e.g. fsrbl6, or all) run directly in "
                        "plain vng, serially, then as knit items; verdicts and wall times "
                        "compared")
    b.add_argument("--workers", default="2", help="pytest -n for --selftests; for --suite a "
                   "list, e.g. 2,4")
    b.add_argument("--suite", metavar="PATH", help="instead: the wall time of this pytest "
                   "path at each --workers (e.g. suites/mptcp --workers 2,4), in one run")
    b.add_argument("--knit-results", metavar="PATH", help="--selftests: take knit's side "
                   "from this results.json of an earlier pytest run instead of running it")
    b.set_defaults(func=cmd_bench)
    sh = sub.add_parser("shell", help="interactive shell in a VM, optionally with a topology")
    sh.add_argument("--kernel")
    sh.add_argument("--topology", help="FILE.py:NAME or package.module:NAME, e.g. "
                                       "knit.topology:pair")
    sh.add_argument("--ns", help="start the shell inside this node (netns)")
    sh.add_argument("--accel", choices=["kvm", "tcg"])
    sh.add_argument("--cpus", type=int, default=2)
    sh.add_argument("--userspace", default=rootfs.DEFAULT, choices=[*rootfs.RELEASES, "host"],
                    help="the guest root tree (default trixie), or host for the host's /")
    sh.set_defaults(func=cmd_shell)
    at = sub.add_parser("attach", help="a shell in a VM kept by pytest --keep-vm")
    at.add_argument("dir", help="the folder pytest printed")
    at.add_argument("--ns", help="start the shell inside this node (netns)")
    at.add_argument("--stop", action="store_true", help="power the kept VM off instead")
    at.set_defaults(func=cmd_attach)
    st = sub.add_parser("selftests", help="fetch and build the upstream selftests matching "
                        "a kernel (cached by source version and target)")
    st.add_argument("action", choices=["fetch"])
    st.add_argument("--kernel")
    st.add_argument("--target", action="append", default=None,
                    help="selftest target to build (default net/mptcp; repeatable)")
    st.set_defaults(func=cmd_selftests)
    f = sub.add_parser("flakes", help="per-test runs, fails and flaky passes from the history")
    f.add_argument("--history", default="artifacts/history.jsonl")
    f.set_defaults(func=cmd_flakes)
    r = sub.add_parser("report", help="static HTML kernel x test matrix (and KCIDB JSON)")
    r.add_argument("results", nargs="*", default=["artifacts/results.json"])
    r.add_argument("-o", "--output", default="artifacts/report.html")
    r.add_argument("--kcidb", metavar="PATH", help="also write a KCIDB v5 submission")
    r.set_defaults(func=cmd_report)
    bi = sub.add_parser("bisect", help="git bisect run over a kernel tree: build and test "
                        "each step", usage="knit bisect --tree T --good A --bad B "
                        "[--configs ...] -- pytest suites/...::test")
    bi.add_argument("--tree", required=True, help="a kernel git checkout (kept clean)")
    bi.add_argument("--good", required=True)
    bi.add_argument("--bad", required=True)
    bi.add_argument("--configs", default="base,net,mptcp,tipc,bpf",
                    help="fragments of kernels/configs for every step")
    bi.add_argument("--jobs", type=int, default=0, help="make -j (default: all cores)")
    bi.add_argument("test", nargs=argparse.REMAINDER, help="-- pytest ARGS...")
    bi.set_defaults(func=cmd_bisect)
    from knit import mptcpify, toa_deploy
    from knit.mutate import cli as mutate_cli
    toa_deploy.add_parser(sub)
    mptcpify.add_parser(sub)
    mutate_cli.add_parser(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except KnitError as e:
        first, *rest = str(e).splitlines() or [""]
        print(f"knit: error: {first}", file=sys.stderr)
        if rest:  # e.g. a build's compiler output
            print("\n".join(rest), file=sys.stderr)
        tail = getattr(e, "console_tail", "")
        if tail:
            print(f"--- console tail ---\n{tail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
