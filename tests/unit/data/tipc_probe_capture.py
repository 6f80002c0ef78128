"""Capture a silent TIPC link's frames from a guest for tests/unit/test_tipc_parsers.py.

    .venv/bin/python tests/unit/data/tipc_probe_capture.py debian-6.12

Boots one VM of that kernel, builds three TIPC nodes on a bridge (tipc1..3, eth bearers,
the suite's `trio`), cuts tipc3's bridge port and records tipc1's eth1 until its link to
tipc3 is withdrawn (suites.tipc.lib.wire:capture_until_lost, as
suites/tipc/test_resilience.py::test_silent_link_fails_after_abort_limit_probes does);
writes tipc_silent_link_<kernel version>.json and its .meta.json.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

# Run by hand from anywhere: the checkout first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tipc_capture import DATA, NODES, main  # noqa: E402  (this folder: sys.path[0])

from suites.tipc.lib.net import Tipc, link, three_on_bridge  # noqa: E402
from suites.tipc.lib.parsers import node_hash  # noqa: E402


def capture(vm) -> None:
    tipc = Tipc(vm)
    kver = vm.run(["uname", "-r"]).stdout.strip()
    vm.run(["modprobe", "tipc"])
    t = three_on_bridge()
    vm.call("knit.guest.netns:build", topology=t.to_dict())
    try:
        for ns in NODES:
            tipc.set_identity(ns, ns)
            tipc.enable_eth(ns, "eth1")
        mesh = {link("tipc1", "eth1", p, "eth1"): "up" for p in ("tipc2", "tipc3")}
        tipc.wait_links("tipc1", mesh, vm.scaled(20))
        tipc.wait_links("tipc3", {link("tipc3", "eth1", "tipc1", "eth1"): "up"}, vm.scaled(20))
        tolerance = tipc.stats("tipc1")[link("tipc1", "eth1", "tipc3", "eth1")].tolerance
        kwargs = {"peer": node_hash("tipc3"), "dev": "eth1", "cut_ns": "tipcsw",
                  "cut": ["ip", "link", "set", "p3", "down"], "wait": vm.scaled(4)}
        cap = vm.call("suites.tipc.lib.wire:capture_until_lost", ns="tipc1",
                      timeout=vm.scaled(20), **kwargs)
    finally:
        vm.call("knit.guest.netns:destroy", names=t.names)
    name = f"tipc_silent_link_{kver}.json"
    (DATA / name).write_text(json.dumps({"tolerance_ms": tolerance, **cap}, indent=1) + "\n")
    meta = {"fixture": name, "kernel": kver,
            "command": ["suites.tipc.lib.wire:capture_until_lost"] +
                       [f"{k}={v}" for k, v in kwargs.items()],
            "netns": "tipc1",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"capture": "AF_PACKET ETH_P_ALL socket on tipc1's eth1, SO_TIMESTAMPNS "
                                 f"({vm.run([vm.python, '-V']).stdout.strip()})"},
            "guest": f"{kver}, {vm.cfg.accel.upper()} guest",
            "notes": "tipc1..3 on one bridge (tipcsw br0), eth bearer each, identities = "
                     "netns names; quiet cluster; at t=0 tipcsw's p3 (tipc3's port) was set "
                     "down; frames until tipc1's link to tipc3 was withdrawn. t: s from the "
                     "cut (kernel timestamps), pkttype: 0 host, 1 broadcast, 3 other host, "
                     "4 outgoing",
            "how": "tests/unit/data/tipc_probe_capture.py"}
    (DATA / f"{name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    kind = cap["event"] and cap["event"]["kind"]
    print(f"captured {name}: {len(cap['frames'])} frames, event {kind}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "debian-6.12", capture)
