"""Capture real `tipc` output from a guest for tests/unit/test_tipc_parsers.py.

    .venv/bin/python tests/unit/data/tipc_capture.py debian-6.12

Boots one VM of that kernel, builds three TIPC nodes on a bridge (tipc1..3, identities =
netns names) with an eth bearer each plus a udp bearer between tipc1 and tipc2, publishes
two user services, sends broadcast traffic, then removes tipc3; writes
tipc_<what>_<kernel version>.<ext> and a .meta.json beside each.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run by hand from anywhere: the checkout first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from knit import kernels  # noqa: E402
from knit.pool import VMPool  # noqa: E402
from knit.vm import VM  # noqa: E402
from suites.tipc.lib.net import Tipc, link, three_on_bridge  # noqa: E402

DATA = Path(__file__).resolve().parent
NODES = ["tipc1", "tipc2", "tipc3"]


def main(kname: str, capture: Callable[[VM], None]) -> None:
    """Boot one VM of `kname` and run `capture(vm)` in it; tipc_probe_capture.py reuses it."""
    art = Path("/tmp/knit-tipc-capture")
    art.mkdir(exist_ok=True)
    pool = VMPool(workdir=art / kname, rwdirs=(art, kernels.cache_dir()))
    try:
        capture(pool.get(kname))
    finally:
        pool.close()


def capture(vm) -> None:
    tipc = Tipc(vm)
    kver = vm.run(["uname", "-r"]).stdout.strip()
    tools = {"iproute2": vm.run(["ip", "-V"]).stdout.strip(),
             "note": "tipc has no -V; it is part of the iproute2 above (/sbin/tipc)"}
    where = f"{kver}, {vm.cfg.accel.upper()} guest"

    def save(what: str, ext: str, ns: str | None, argv: list[str], notes: str,
             text: str | None = None) -> None:
        if text is None:
            text = vm.run(argv, ns=ns).stdout
        name = f"tipc_{what}_{kver}.{ext}"
        (DATA / name).write_text(text)
        meta = {"fixture": name, "kernel": kver, "command": argv, "netns": ns,
                "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tools": tools, "guest": where, "notes": notes,
                "how": "tests/unit/data/tipc_capture.py"}
        (DATA / f"{name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    vm.run(["modprobe", "tipc"])
    t = three_on_bridge()
    vm.call("knit.guest.netns:build", topology=t.to_dict())
    try:
        save("node_identity_unset", "txt", "tipc1", ["tipc", "node", "get", "identity"],
             "fresh netns: no identity set, no address yet")
        for ns in NODES:
            tipc.set_identity(ns, ns)
            tipc.enable_eth(ns, "eth1")
        tipc.enable_udp("tipc1", "u1", "10.0.0.1", "10.0.0.2")
        tipc.enable_udp("tipc2", "u1", "10.0.0.2", "10.0.0.1")
        want = {link("tipc1", "eth1", p, "eth1"): "up" for p in ("tipc2", "tipc3")}
        tipc.wait_links("tipc1", want | {link("tipc1", "u1", "tipc2", "u1"): "up"}, vm.scaled(20))
        base = "tipc1..3 on one bridge, eth bearer each, udp bearer u1 tipc1<->tipc2"
        save("node_identity", "txt", "tipc1", ["tipc", "node", "get", "identity"],
             "after `tipc node set identity tipc1` and the links came up")
        save("node_address", "txt", "tipc1", ["tipc", "node", "get", "address"], base)
        save("bearer_list", "txt", "tipc1", ["tipc", "bearer", "list"], base)
        save("link_list", "txt", "tipc1", ["tipc", "link", "list"], base + "; all up")
        save("link_list", "json", "tipc1", ["tipc", "-j", "link", "list"], base + "; all up")
        py = vm.python
        pub = [py, "-m", "suites.tipc.lib.sock", "publish"]
        with vm.spawn(pub + ["--type", "18800", "--lower", "10", "--upper", "19"],
                      ns="tipc2", ready="ready"), \
             vm.spawn(pub + ["--type", "18801", "--lower", "5", "--upper", "5", "--scope",
                             "node"], ns="tipc1", ready="ready"):
            time.sleep(vm.scaled(1))       # let tipc2's publication reach tipc1
            save("nametable", "json", "tipc1", ["tipc", "-j", "nametable", "show"],
                 base + "; user publications {18800,10,19} cluster scope from tipc2 and "
                 "{18801,5,5} node scope in tipc1")
            save("nametable", "txt", "tipc1", ["tipc", "nametable", "show"],
                 "same moment as the .json")
        with vm.spawn([py, "-m", "suites.tipc.lib.sock", "sink", "--type", "18891",
                       "--instance", "1"], ns="tipc2", ready="ready") as sink:
            vm.call("suites.tipc.lib.sock:send_burst", ns="tipc1", type=18891, instance=1,
                    count=50, size=3000, broadcast=True)
            sink.wait_for('"summary"', vm.scaled(10))
        save("link_stat", "json", "tipc1", ["tipc", "-j", "link", "stat", "show"],
             base + "; after 50 broadcast multicasts of 3000 bytes (fragmented) + 1 marker")
        save("link_stat", "txt", "tipc1", ["tipc", "link", "stat", "show"],
             "right after the .json")
        ev = vm.call("suites.tipc.lib.sock:subscribe_once", ns="tipc1", type=0, lower=0,
                     upper=0xFFFFFFFF, timeout_ms=500)
        save("topsrv_events", "json", "tipc1", ["suites.tipc.lib.sock:subscribe_once",
             "type=0", "lower=0", "upper=0xffffffff", "timeout_ms=500"],
             "struct tipc_subscr sent and each struct tipc_event received, hex, host order "
             "(x86_64, little endian); usr_handle 'knit'",
             text=json.dumps(ev, indent=2) + "\n")
        vm.call("knit.guest.netns:destroy", names=["tipc3"])
        gone = link("tipc1", "eth1", "tipc3", "eth1")
        tipc.wait_links("tipc1", {gone: "down"}, vm.scaled(10))
        after = base + "; after the tipc3 netns was destroyed"
        save("link_list_down", "json", "tipc1", ["tipc", "-j", "link", "list"], after)
        save("link_list_down", "txt", "tipc1", ["tipc", "link", "list"], after)
        save("node_list", "txt", "tipc1", ["tipc", "node", "list"], after)
    finally:
        vm.call("knit.guest.netns:destroy", names=t.names)
    print(f"captured {kver}", subprocess.run(["ls", str(DATA)], capture_output=True,
                                              text=True).stdout.count("tipc_"), "files")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "debian-6.12", capture)
