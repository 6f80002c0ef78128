"""`knit mptcpify`: make unmodified programs use MPTCP with bpf/mptcpify (an fmod_ret BPF
program on update_socket_protocol, Linux >= 6.6), scoped to one cgroup v2.

    knit mptcpify attach --cgroup DIR [--comm NAME] [--pin DIR] [--obj FILE] [--dry-run]
    knit mptcpify stats  [--pin DIR]                 sockets upgraded / left alone, as JSON
    knit mptcpify detach [--pin DIR] [--dry-run]

attach compiles bpf/mptcpify/mptcpify.bpf.c with clang (cached) unless --obj names a
prebuilt object, checks the running kernel, then prints and runs each bpftool command: load
the program, attach it (bpftool's autoattach pins the link under --pin, a bpffs directory)
and write its scope: the cgroup's id (the inode number of DIR; tasks directly in DIR, not
in its children) and, with --comm, the command name. detach removes the pins, which drops
the link. Sockets already open stay what they are. bpf/mptcpify/README.md has the recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys

from knit.paths import ROOT

SRC = ROOT / "bpf" / "mptcpify" / "mptcpify.bpf.c"
PIN = "/sys/fs/bpf/knit-mptcpify"
HOOK = "update_socket_protocol"
MIN_VERSION = (6, 6)   # update_socket_protocol, an fmod_ret hook since 6.6
COMM_LEN = 16
STATS = ("upgraded", "out_of_scope")   # rows of mptcpify_stats


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `knit mptcpify ...` on knit's sub-command parser."""
    p = subparsers.add_parser("mptcpify", help="make a cgroup's programs use MPTCP (BPF)")
    p.add_argument("action", choices=["attach", "stats", "detach"])
    p.add_argument("--cgroup", help="cgroup v2 dir whose tasks get MPTCP (attach)")
    p.add_argument("--comm", help="only tasks of this command name (as in /proc/PID/comm)")
    p.add_argument("--pin", default=PIN, help=f"bpffs dir for the link and maps ({PIN})")
    p.add_argument("--obj", help="prebuilt mptcpify.bpf.o (default: compile bpf/mptcpify)")
    p.add_argument("--dry-run", action="store_true", help="print the bpftool commands only")
    p.set_defaults(func=main)
    return p


def version_problem(release: str) -> str | None:
    """Why kernel `release` cannot run mptcpify, or None."""
    nums = tuple(int(x) for x in release.split("-")[0].split(".")[:2] if x.isdigit())
    if nums < MIN_VERSION:
        return (f"kernel {release} has no {HOOK} hook (fmod_ret, Linux >= "
                f"{'.'.join(map(str, MIN_VERSION))})")
    return None


def conf_value(cgroup_id: int, comm: str | None) -> list[str]:
    """struct mptcpify_conf {u64 cgroup_id; char comm[16]} as bpftool byte arguments."""
    name = (comm or "").encode()
    if len(name) >= COMM_LEN:
        raise ValueError(f"--comm {comm!r}: the kernel keeps {COMM_LEN - 1} bytes of a name")
    raw = cgroup_id.to_bytes(8, "little") + name.ljust(COMM_LEN, b"\0")
    return [str(b) for b in raw]


def attach_cmds(obj: str, pin: str, cgroup_id: int, comm: str | None) -> list[list[str]]:
    # bpftool pins below an existing bpffs directory (else it tries to mount one there).
    return [["mkdir", "-p", pin],
            ["bpftool", "prog", "loadall", obj, f"{pin}/links", "pinmaps", f"{pin}/maps",
             "autoattach"],
            ["bpftool", "map", "update", "pinned", f"{pin}/maps/mptcpify_conf",
             "key", "0", "0", "0", "0", "value", *conf_value(cgroup_id, comm)]]


def detach_cmds(pin: str) -> list[list[str]]:
    return [["rm", "-r", pin]]


def parse_stats(text: str) -> dict[str, int]:
    """`bpftool -j map dump` of mptcpify_stats (per-CPU) -> totals by row name."""
    out = dict.fromkeys(STATS, 0)
    for e in json.loads(text):
        row = e["key"] if isinstance(e["key"], int) else int(e["key"][0], 16)
        if row < len(STATS):
            out[STATS[row]] = sum(v["value"] if isinstance(v["value"], int)
                                  else int.from_bytes(bytes(int(b, 16) for b in v["value"]),
                                                      "little")
                                  for v in e["values"])
    return out


def _run(cmds: list[list[str]], dry: bool) -> int:
    for argv in cmds:
        print(("" if dry else "+ ") + shlex.join(argv), flush=True)
        if not dry:
            p = subprocess.run(argv)
            if p.returncode:
                print(f"knit mptcpify: {argv[0]} exited {p.returncode}", file=sys.stderr)
                return p.returncode
    return 0


def main(args: argparse.Namespace) -> int:
    """Run one `knit mptcpify` action; 0 on success."""
    if args.action == "attach":
        if not args.cgroup:
            print("knit mptcpify attach: --cgroup is required", file=sys.stderr)
            return 2
        problem = version_problem(platform.release())
        if problem and not args.dry_run:
            print(f"knit mptcpify: {problem}; use mptcpize (LD_PRELOAD) there",
                  file=sys.stderr)
            return 1
        try:
            cgroup_id = os.stat(args.cgroup).st_ino if os.path.isdir(args.cgroup) else 0
            if not cgroup_id and not args.dry_run:
                print(f"knit mptcpify: {args.cgroup} is not a directory (a cgroup v2 dir)",
                      file=sys.stderr)
                return 2
            obj = args.obj
            if not obj:
                from knit import kbuild
                obj = str(kbuild.build_bpf(SRC).path)
            return _run(attach_cmds(obj, args.pin, cgroup_id, args.comm), args.dry_run)
        except ValueError as e:
            print(f"knit mptcpify: {e}", file=sys.stderr)
            return 2
    if args.action == "detach":
        return _run(detach_cmds(args.pin), args.dry_run)
    p = subprocess.run(["bpftool", "-j", "map", "dump", "pinned",
                        f"{args.pin}/maps/mptcpify_stats"], capture_output=True, text=True)
    if p.returncode:
        print(f"knit mptcpify: no mptcpify under {args.pin} ({p.stderr.strip()})",
              file=sys.stderr)
        return 1
    print(json.dumps(parse_stats(p.stdout)))
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="knit")
    add_parser(ap.add_subparsers(dest="cmd", required=True))
    ns = ap.parse_args(sys.argv[1:])
    sys.exit(ns.func(ns))

