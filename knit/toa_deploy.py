"""`knit toa`: deploy bpf/toa (the module-free TOA) on a real host with bpftool.

    knit toa attach --cgroup DIR --allow PREFIX [--allow ...] [--pin DIR] [--obj FILE]
                    [--kind 254] [--len 8|20] [--kernel K] [--dry-run]
    knit toa allow  --allow PREFIX [...] [--pin DIR] [--dry-run]   replace the allowlist
    knit toa stats  [--pin DIR]                                     counters, as JSON
    knit toa detach --cgroup DIR [--pin DIR] [--dry-run]

attach compiles bpf/toa/toa.bpf.c with clang (cached, as the suite does) unless --obj
names a prebuilt object, checks the kernel's requirements, then prints and runs each
bpftool command: load and pin the programs and maps under --pin (a bpffs directory), attach
the five programs to --cgroup (a cgroup v2 directory: the backend's service), set the
option read (toa_conf: --kind and --len, 254/8 by default; 200/8 and the IPv6 253/20 or
254/20 are the other variants in use), fill the allowlist. --dry-run only prints the
commands (the recipe); so does --kernel K when K is
not the running kernel (K: a knit kernel name such as debian-6.1, checked from its config).
Needs root (CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN for cgroup attach). bpf/toa/README.md
has the recipe by hand and the security notes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from knit.paths import ROOT
from knit.toa_counters import parse_bpftool

SRC = ROOT / "bpf" / "toa" / "toa.bpf.c"
PIN = "/sys/fs/bpf/knit-toa"
PROGS = {"toa_sockops": "sock_ops", "toa_getpeername4": "getpeername4",
         "toa_getpeername6": "getpeername6", "toa_getsockname4": "getsockname4",
         "toa_getsockname6": "getsockname6"}
NEEDS = ("CONFIG_BPF_SYSCALL", "CONFIG_CGROUP_BPF", "CONFIG_CGROUPS")
MIN_VERSION = (5, 17)   # bpf_loop(); cgroup getpeername hooks and sk storage are older


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `knit toa ...` on knit's sub-command parser."""
    p = subparsers.add_parser("toa", help="deploy bpf/toa (module-free TOA) on this host")
    p.add_argument("action", choices=["attach", "allow", "stats", "detach"])
    p.add_argument("--cgroup", help="cgroup v2 dir of the backend servers (attach, detach)")
    p.add_argument("--allow", action="append", default=[], metavar="PREFIX",
                   help="load balancer source prefix whose option is honoured (repeatable; "
                        "none: no option is honoured)")
    p.add_argument("--pin", default=PIN, help=f"bpffs dir for programs and maps ({PIN})")
    p.add_argument("--obj", help="prebuilt toa.bpf.o (default: compile bpf/toa with clang)")
    p.add_argument("--kind", type=int, default=254, help="TCP option kind to read (254)")
    p.add_argument("--len", type=int, default=8, choices=[8, 20], dest="length",
                   help="its length: 8 = port + IPv4 (default), 20 = port + IPv6")
    p.add_argument("--kernel", help="check requirements against this knit kernel (default: "
                                    "the running one); another kernel implies --dry-run")
    p.add_argument("--dry-run", action="store_true", help="print the bpftool commands only")
    p.set_defaults(func=main)
    return p


def prefix_key(prefix: str) -> list[str]:
    """toa_allow's LPM key: prefixlen (u32, host order) + IPv6 address, IPv4 as ::ffff:a.b.c.d
    with 96 added to the length. Bytes as bpftool arguments."""
    net = ipaddress.ip_network(prefix, strict=False)
    if net.version == 4:
        addr = b"\0" * 10 + b"\xff\xff" + net.network_address.packed
        plen = 96 + net.prefixlen
    else:
        addr, plen = net.network_address.packed, net.prefixlen
    return [str(b) for b in plen.to_bytes(4, "little") + addr]


def requirements(kernel: str | None) -> tuple[str, list[str], bool]:
    """(version, problems, running) for a knit kernel name, or the running kernel."""
    from knit import kernels
    if kernel:
        k = kernels.resolve(kernel)
        k.load_config()
        version, source = k.version, k.config_path
    else:
        version = platform.release()
        source = Path(f"/boot/config-{version}")
    try:
        config = kernels.parse_config(Path(source).read_text()) if source else {}
    except OSError:
        config = {}
    problems = [] if config else [f"no kernel config at {source}: kconfig not checked"]
    problems += [f"{o} not set" for o in NEEDS if config and config.get(o) not in ("y", "m")]
    nums = tuple(int(x) for x in version.split("-")[0].split(".")[:2] if x.isdigit())
    if nums < MIN_VERSION:
        problems.append(f"kernel {version} < {'.'.join(map(str, MIN_VERSION))} (bpf_loop)")
    return version, problems, version == platform.release()


def attach_cmds(obj: str, cgroup: str, pin: str, allow: list[str], kind: int = 254,
                length: int = 8) -> list[list[str]]:
    # bpftool pins below an existing bpffs directory (else it tries to mount one there).
    conf = [str(b) for b in kind.to_bytes(4, "little") + length.to_bytes(4, "little")]
    cmds = [["mkdir", "-p", pin],
            ["bpftool", "prog", "loadall", obj, f"{pin}/progs", "pinmaps", f"{pin}/maps"],
            ["bpftool", "map", "update", "pinned", f"{pin}/maps/toa_conf", "key", "0", "0",
             "0", "0", "value", *conf]]
    cmds += [["bpftool", "cgroup", "attach", cgroup, kind, "pinned", f"{pin}/progs/{prog}"]
             for prog, kind in PROGS.items()]
    return cmds + allow_cmds(pin, allow, [])


def allow_cmds(pin: str, allow: list[str], old: list[list[str]]) -> list[list[str]]:
    m = f"{pin}/maps/toa_allow"
    return ([["bpftool", "map", "delete", "pinned", m, "key", *k] for k in old]
            + [["bpftool", "map", "update", "pinned", m, "key", *prefix_key(p),
                "value", "1", "0", "0", "0"] for p in allow])


def detach_cmds(cgroup: str, pin: str) -> list[list[str]]:
    return [["bpftool", "cgroup", "detach", cgroup, kind, "pinned", f"{pin}/progs/{prog}"]
            for prog, kind in PROGS.items()] + [["rm", "-r", pin]]


def _run(cmds: list[list[str]], dry: bool) -> int:
    for argv in cmds:
        print(("" if dry else "+ ") + shlex.join(argv), flush=True)
        if not dry:
            p = subprocess.run(argv)
            if p.returncode:
                print(f"knit toa: {argv[0]} exited {p.returncode}", file=sys.stderr)
                return p.returncode
    return 0


def _bpftool_json(*args: str) -> object:
    return json.loads(subprocess.run(["bpftool", "-j", *args], check=True,
                                     capture_output=True, text=True).stdout)


def main(args: argparse.Namespace) -> int:
    """Run one `knit toa` action; 0 on success."""
    dry = args.dry_run
    if args.action in ("attach", "detach") and not args.cgroup:
        print(f"knit toa {args.action}: --cgroup is required", file=sys.stderr)
        return 2
    if args.action == "attach":
        version, problems, running = requirements(args.kernel)
        for p in problems:
            print(f"knit toa: warning: {p}", file=sys.stderr)
        if not running and not dry:
            print(f"# {version} is not the running kernel: printing the recipe only")
            dry = True
        if not args.allow:
            print("knit toa: warning: no --allow: the option is honoured from nobody",
                  file=sys.stderr)
        obj = args.obj
        if not obj:
            from knit import kbuild
            obj = str(kbuild.build_bpf(SRC).path)
        if not 2 <= args.kind <= 255:
            print(f"knit toa: --kind {args.kind}: a TCP option kind is 2..255",
                  file=sys.stderr)
            return 2
        return _run(attach_cmds(obj, args.cgroup, args.pin, args.allow, args.kind,
                                args.length), dry)
    if args.action == "allow":
        old = [] if dry else [[str(int(b, 16)) for b in e["key"]] for e in
                              _bpftool_json("map", "dump", "pinned",
                                            f"{args.pin}/maps/toa_allow")]
        return _run(allow_cmds(args.pin, args.allow, old), dry)
    if args.action == "detach":
        return _run(detach_cmds(args.cgroup, args.pin), dry)
    text = json.dumps(_bpftool_json("map", "dump", "pinned", f"{args.pin}/maps/toa_stats"))
    print(json.dumps({k: sum(v) for k, v in parse_bpftool(text).items()}, indent=1))
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="knit")
    add_parser(ap.add_subparsers(dest="cmd", required=True))
    ns = ap.parse_args(sys.argv[1:])
    if os.geteuid() != 0 and not ns.dry_run:
        print("knit toa: needs root (or --dry-run)", file=sys.stderr)
    sys.exit(ns.func(ns))
