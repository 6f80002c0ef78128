"""Captures bpf/toa's counters (`bpftool -j map dump pinned .../toa_stats`) from a guest
around known traffic, for test_toa_bpf_stats.py.

    .venv/bin/python tests/unit/data/toa_bpf_stats_capture.py [debian-6.12]

Boots the kernel (knit pool), builds bpf/toa and attaches it to a cgroup (the suite's
suites.toa.lib.bpf.attach_toa), builds the TOA suite's netns, then dumps the map before and
after 2 handshakes with a TOA option and 1 without (suites.toa.lib.client.connect). Writes
toa_bpf_stats_{before,after}_<version>.json and a .meta.json beside each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run by hand from anywhere: the checkout first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from knit import kbuild, kernels  # noqa: E402
from knit.pool import VMPool  # noqa: E402
from suites.toa.lib.impl import ALLOW, BPF_SRC, bpf_attached, sha256  # noqa: E402
from suites.toa.lib.net import Conn, ToaNet, topology  # noqa: E402
from suites.toa.lib.wire import toa  # noqa: E402

DATA = Path(__file__).resolve().parent


def main(name: str = "debian-6.12") -> None:
    work = Path(tempfile.mkdtemp(prefix="toa-bpf-capture-"))
    pool = VMPool(workdir=work, rwdirs=(work, kernels.cache_dir()))
    try:
        vm = pool.get(name)
        k = pool.kernel(name)
        obj = kbuild.build_bpf(BPF_SRC)
        t = topology()
        with bpf_attached(vm, obj, ALLOW) as state:
            vm.call("knit.guest.netns:build", topology=t.to_dict())
            net = ToaNet(vm, state)
            before = vm.call("suites.toa.lib.bpf:toa_stats_json", state=state)
            net.connect(Conn(ack_opts=toa("203.0.113.7", 4242)),
                        Conn(ack_opts=toa("203.0.113.99", 31337)), Conn())
            after = vm.call("suites.toa.lib.bpf:toa_stats_json", state=state)
            vm.call("knit.guest.netns:destroy", names=t.names)
        cpus = vm.run(["cat", "/sys/devices/system/cpu/possible"]).stdout.strip()
        tool = vm.run(["bpftool", "version"]).stdout.splitlines()[0]
    finally:
        pool.close()
    meta = {"kernel": k.version, "accel": vm.cfg.accel, "vm_cpus": pool.cpus,
            "possible_cpus": cpus, "object": f"bpf/toa ({obj.key}, sha256 {sha256(obj.path)})",
            "tool": tool,
            "command": ["bpftool", "-j", "map", "dump", "pinned", "<bpffs>/maps/toa_stats"],
            "how": "python tests/unit/data/toa_bpf_stats_capture.py " + name,
            "traffic": "between before and after: suites.toa.lib.client.connect with 2 "
                       "handshakes carrying TOA (203.0.113.7:4242, 203.0.113.99:31337) "
                       "and 1 without; the server calls accept, getpeername, getsockname",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "clang": subprocess.run(["clang", "--version"], capture_output=True,
                                    text=True).stdout.splitlines()[0]}
    for label, text in (("before", before), ("after", after)):
        f = DATA / f"toa_bpf_stats_{label}_{k.version}.json"
        f.write_text(text)
        Path(f"{f}.meta.json").write_text(json.dumps({"fixture": f.name, **meta}, indent=1)
                                          + "\n")
        print(f)


if __name__ == "__main__":
    main(*sys.argv[1:])
