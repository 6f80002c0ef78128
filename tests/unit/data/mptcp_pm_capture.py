"""Records the ss / ip mptcp fixtures (ss_*, ip_mptcp_*) from a knit guest.

Run from the repo root: .venv/bin/python tests/unit/data/mptcp_pm_capture.py debian-6.12
Boots the kernel, builds knit.topology.pair(3), runs one MPTCP transfer with a client
subflow endpoint and a server signal endpoint that is deleted mid-transfer, and saves
what the tools printed plus a .meta.json beside each file.
"""

from __future__ import annotations

import datetime
import json
import sys
import tempfile
from pathlib import Path

# Run by hand from anywhere: the checkout first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from knit import kernels  # noqa: E402
from knit.pool import VMPool  # noqa: E402
from suites.mptcp.lib import pm  # noqa: E402
from suites.mptcp.lib.session import two_hosts  # noqa: E402

DATA = Path(__file__).parent


def main(name: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="knit-capture-"))
    pool = VMPool(workdir=work, rwdirs=(work, kernels.cache_dir()))
    try:
        vm = pool.get(name)
        release = vm.run(["uname", "-r"]).stdout.strip()
        t = two_hosts(3)
        vm.call("knit.guest.netns:build", topology=t.to_dict())
        pm.configure(vm, "ns1", subflows=2, add_addr_accepted=1,
                           endpoints=(pm.ep("10.0.2.1", "subflow", dev="ns1eth2"),))
        pm.configure(vm, "ns2", subflows=2,
                           endpoints=(pm.ep("10.0.3.2", "signal", id=5),
                                      pm.ep("10.0.2.2", "signal", "backup", port=10100)))
        got: dict[str, tuple[list[str], str]] = {}
        for cmd in (["ip", "-j", "mptcp", "endpoint", "show"], ["ip", "mptcp", "limits", "show"]):
            got["ip_mptcp_" + cmd[-2]] = (cmd, vm.run(cmd, ns="ns2").stdout)
        probes = [["ss", "-MniH"], ["ss", "-tniH"], ["ss", "-tOniH"]]
        with vm.spawn(["ip", "mptcp", "monitor"], ns="ns1") as mon:
            vm.call("suites.mptcp.lib.traffic:wait_syscall", pid=mon.pid, nr=47)
            r = vm.call("suites.mptcp.lib.traffic:transfer", ns="ns1", connect="10.0.1.2",
                        size=1 << 20, rate=256 << 10, wait_subflows=2, join_wait=vm.scaled(6),
                        probes=probes,
                        actions=[{"at": 0.6, "ns": "ns2", "argv": pm.delete_argv(5)}],
                        timeout=600)
            vm.run(["sleep", "2"])
        assert r["intact"], r
        for argv, p in zip(probes, r["probes"], strict=True):
            got["ss_" + argv[1].lstrip("-")] = (argv, p["stdout"])
        got["ip_mptcp_monitor"] = (["ip", "mptcp", "monitor"], mon.result.stdout)
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        iproute = vm.run(["ip", "-V"]).stdout.strip()
        for key, (argv, text) in got.items():
            f = DATA / f"{key}_{release}.txt"
            f.write_text(text)
            meta = {"fixture": f.name, "kernel": release, "tool": iproute,
                    "command": " ".join(argv), "date": date, "accel": vm.cfg.accel,
                    "how": "tests/unit/data/mptcp_pm_capture.py " + name}
            (DATA / f"{f.name}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            print(f"wrote {f}")
        vm.call("knit.guest.netns:destroy", names=t.names)
    finally:
        pool.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "debian-6.12")
