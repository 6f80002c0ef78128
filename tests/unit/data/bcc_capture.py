"""Capture real bcc tool output from a guest for tests/unit/test_bcc_parsers.py.

    .venv/bin/python tests/unit/data/bcc_capture.py debian-6.1 [libbpf] [python]

Boots one VM of that kernel, builds ns1 <-> ns2 (10.0.1.0/24, dead:beef:1::/64) and, for each
variant asked for (default: both, where the variant can run), runs tcptracer over one IPv4
and one IPv6 connection (client comm knit-cli in ns1, server knit-srv in ns2), solisten over
an IPv4 and an IPv6 listener with backlog 7, and softirqs -T 1 and -d under TCP bulk traffic.
Writes bcc_<tool>_<variant>[_<flags>]_<kernel version>.txt with a .meta.json beside each,
and the compile probe's verdict as bcc_probe_python_<kernel version>.json.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

# Run by hand from anywhere: the checkout first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from knit import kernels  # noqa: E402
from knit.pool import VMPool  # noqa: E402
from knit.topology import pair  # noqa: E402
from suites.bcc.lib import tools  # noqa: E402
from suites.bcc.lib.traffic import LISTENING  # noqa: E402

DATA = Path(__file__).resolve().parent


def main(kname: str, variants: list[str]) -> None:
    art = Path("/tmp/knit-bcc-capture")
    art.mkdir(exist_ok=True)
    pool = VMPool(workdir=art / kname, rwdirs=(art, kernels.cache_dir()))
    try:
        vm = pool.get(kname)
        vm.wait_warm()
        capture(vm, pool.kernel(kname), variants)
    finally:
        pool.close()


def capture(vm, k, variants: list[str]) -> None:
    kver = vm.run(["uname", "-r"]).stdout.strip()
    t = pair(paths=1)
    vm.call("knit.guest.netns:build", topology=t.to_dict())
    py = [vm.python, "-m", "suites.bcc.lib.traffic"]
    v4, v6 = t.addr("ns2", "ns2eth1", 4), t.addr("ns2", "ns2eth1", 6)

    def save(name: str, tr: tools.Trace, notes: str) -> None:
        fname = f"bcc_{name}_{kver}.txt"
        (DATA / fname).write_text(tr.result.stdout)
        pkg = "libbpf-tools" if tr.variant == "libbpf" else "bpfcc-tools"
        meta = {"fixture": fname, "kernel": kver, "tool": tr.tool, "variant": tr.variant,
                "tool_version": f"{pkg} {tools.package_version(pkg)} (bcc {tools.bcc_version()})",
                "command": tr.argv, "rc": tr.result.rc, "startup_s": round(tr.startup_s, 1),
                "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "guest": f"{kver}, {vm.cfg.accel.upper()} guest", "notes": notes,
                "stderr": tr.result.stderr[-2000:], "how": "tests/unit/data/bcc_capture.py"}
        (DATA / f"{fname}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{fname}: rc={tr.result.rc} startup {tr.startup_s:.1f}s, "
              f"{len(tr.events)} events", flush=True)

    for variant in variants:
        why = tools.problem(k, "tcptracer", variant)
        if why:
            print(f"{variant}: skipped: {why}", flush=True)
            continue
        with tools.trace(vm, k, "tcptracer", variant) as tr:
            for i, addr in enumerate((v4, v6)):
                with vm.spawn([*py, "serve", addr, str(5000 + i)], ns="ns2", ready=LISTENING):
                    vm.call("suites.bcc.lib.traffic:connect", ns="ns1", addr=addr, port=5000 + i)
                    time.sleep(1)
            tr.wait(lambda evs: len(evs) >= 8, vm.scaled(10), "8 events")
        save(f"tcptracer_{variant}", tr, "one IPv4 then one IPv6 connection, knit-cli in ns1 "
             "-> knit-srv in ns2 (ports 5000, 5001), both ends close")
        with tools.trace(vm, k, "solisten", variant) as tr:
            for i, addr in enumerate((v4, v6)):
                with vm.spawn([*py, "serve", addr, str(6000 + i), "--backlog", "7",
                               "--accepts", "0"], ns="ns2", ready=LISTENING):
                    time.sleep(1)
            tr.wait(lambda evs: len(evs) >= 2, vm.scaled(10), "2 events")
        save(f"solisten_{variant}", tr, "knit-srv listen() with backlog 7 on 10.0.1.2:6000 "
             "then [dead:beef:1::2]:6001 in ns2")
        vm.run(["tc", "qdisc", "add", "dev", "ns1eth1", "root", "netem", "delay", "1ms"],
               ns="ns1")
        with tools.trace(vm, k, "softirqs", variant, ["-T", "1"]) as tr:
            time.sleep(3)
            vm.call("suites.bcc.lib.traffic:bulk", ns="ns1", server_ns="ns2", addr=v4,
                    port=7000, seconds=3)
            time.sleep(3)
        save(f"softirqs_{variant}_T1", tr, "softirqs -T 1: ~3 s idle, 3 s TCP bulk ns1->ns2 "
             "(netem delay 1ms on ns1eth1), ~3 s idle; stopped with SIGINT")
        with tools.trace(vm, k, "softirqs", variant, ["-d"]) as tr:
            vm.call("suites.bcc.lib.traffic:bulk", ns="ns1", server_ns="ns2", addr=v4,
                    port=7001, seconds=3)
        save(f"softirqs_{variant}_d", tr, "softirqs -d during 3 s of TCP bulk traffic; "
             "histograms printed at SIGINT")
        vm.run(["tc", "qdisc", "del", "dev", "ns1eth1", "root"], ns="ns1")
    vm.call("knit.guest.netns:destroy", names=t.names)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or list(tools.VARIANTS))
