"""Captures /proc/net/toa_stats from a guest around known traffic, for test_toa_stats.py.

    .venv/bin/python tests/unit/data/toa_stats_capture.py [debian-6.12]

Boots the kernel (knit pool), builds and loads kmod/toa, builds the TOA suite's netns,
then reads the file before and after 2 handshakes with a TOA option and 1 without
(suites.toa.lib.client.connect). Writes toa_stats_{before,after}_<version>.txt and a
.meta.json beside each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run by hand from anywhere: the checkout first on the path, then its ROOT.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from knit import kbuild, kernels  # noqa: E402
from knit.paths import ROOT  # noqa: E402
from knit.pool import VMPool  # noqa: E402
from suites.toa.lib.net import Conn, ToaNet, topology  # noqa: E402
from suites.toa.lib.wire import toa  # noqa: E402

DATA = Path(__file__).resolve().parent


def main(name: str = "debian-6.12") -> None:
    work = Path(tempfile.mkdtemp(prefix="toa-capture-"))
    pool = VMPool(workdir=work, rwdirs=(work, kernels.cache_dir()))
    try:
        vm = pool.get(name)
        k = pool.kernel(name)
        ko = kbuild.build_module(ROOT / "kmod" / "toa", k)
        t = topology()
        with kbuild.loaded(vm, ko):
            vm.call("knit.guest.netns:build", topology=t.to_dict())
            net = ToaNet(vm, ko.name)
            before = vm.call("suites.toa.lib.stats:read_text")
            net.connect(Conn(ack_opts=toa("203.0.113.7", 4242)),
                        Conn(ack_opts=toa("203.0.113.99", 31337)), Conn())
            after = vm.call("suites.toa.lib.stats:read_text")
            vm.call("knit.guest.netns:destroy", names=t.names)
        cpus = vm.run(["cat", "/sys/devices/system/cpu/possible"]).stdout.strip()
    finally:
        pool.close()
    meta = {"kernel": k.version, "accel": vm.cfg.accel, "vm_cpus": pool.cpus,
            "possible_cpus": cpus, "module": f"kmod/toa ({ko.key})",
            "tool": "cat /proc/net/toa_stats (read in Python: suites.toa.lib.stats.read_text)",
            "command": "python tests/unit/data/toa_stats_capture.py " + name,
            "traffic": "between before and after: suites.toa.lib.client.connect with 2 "
                       "handshakes carrying TOA (203.0.113.7:4242, 203.0.113.99:31337) "
                       "and 1 without; the server calls accept, getpeername, getsockname",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host_gcc": subprocess.run(["gcc", "--version"], capture_output=True,
                                       text=True).stdout.splitlines()[0]}
    for label, text in (("before", before), ("after", after)):
        f = DATA / f"toa_stats_{label}_{k.version}.txt"
        f.write_text(text)
        Path(f"{f}.meta.json").write_text(json.dumps({"fixture": f.name, **meta}, indent=1)
                                          + "\n")
        print(f)


if __name__ == "__main__":
    main(*sys.argv[1:])
