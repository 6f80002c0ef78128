"""The TOA's life cycle and bookkeeping, for both implementations: the automatic build,
load/attach, the counters, live entries, removal under load, and 1000 concurrent
connections. Where kmod/toa and bpf/toa differ by design, the case says how."""

from __future__ import annotations

from pathlib import Path

import pytest

from knit import kbuild, kernels
from knit.kernels import Kernel
from knit.vm import VM
from suites.toa.lib import stats as toa_stats
from suites.toa.lib.impl import BPF_PROGS, Toa
from suites.toa.lib.net import SRV4, Conn, ToaNet
from suites.toa.lib.wire import toa

A = ("203.0.113.7", 4242)
B = ("203.0.113.99", 31337)
STATS_ROWS = ("syn_recv_sock_toa", "syn_recv_sock_no_toa", "getname_toa_ok",
              "getname_toa_mismatch", "getname_toa_empty", "getname_toa_bypass")


def last_toa_line(vm: VM) -> str:
    return [line for line in vm.run(["dmesg"]).stdout.splitlines() if "TOA:" in line][-1]


def test_built_for_the_guest_kernel_and_loaded(vm: VM, toa: Toa, toa_net: ToaNet,
                                               knit_kernel: Kernel, toa_reference: bool,
                                               toa_needs) -> None:
    toa_needs(entries=True)
    if toa.kind == "kmod":
        assert kbuild.modinfo(toa.built.path, "vermagic").split()[0] == knit_kernel.version
        assert toa.built.path.is_relative_to(kernels.cache_dir() / "kmod" / knit_kernel.version)
        name = toa.impl["module"]
        assert vm.run(["cat", f"/sys/module/{name}/initstate"]).stdout.strip() == "live"
        if toa_reference:   # kmod/toa's own log line and rows (kmod/toa/README.md)
            assert last_toa_line(vm).endswith("TOA: toa loaded")
            toa_needs(*toa_stats.ROWS)
        # The proc file exists in every netns (pernet), with one column per possible CPU.
        rows = [list(toa_stats.parse_per_cpu(vm.call(toa_stats.read_text, ns=ns)))
                for ns in (None, "toa_s")]
        assert rows[0] == rows[1] and rows[0], rows
    else:
        # By design not per kernel: one object under $KNIT_CACHE/bpf for every kernel, and
        # no dmesg line; its five programs sit on the cgroup, its counters in a map.
        assert toa.built.path.is_relative_to(kernels.cache_dir() / "bpf")
        attached = vm.call("suites.toa.lib.bpf:cgroup_progs", state=toa.impl)
        assert sorted(p["name"] for p in attached) == sorted(
            f"toa_{t.replace('sock_ops', 'sockops')}" for t in BPF_PROGS)
        assert set(toa_net.stats()) == set(toa_stats.BPF_ROWS)
    assert toa_net.entries() == 0


def test_a_build_failure_shows_the_compiler_output(toa_impl: str, knit_kernel: Kernel,
                                                   tmp_path: Path) -> None:
    src = tmp_path / "broken_toa"
    src.mkdir()
    cache = tmp_path / "cache"
    with pytest.raises(kbuild.BuildError) as e:
        if toa_impl == "kmod":    # kbuild against this kernel's headers
            (src / "Makefile").write_text("obj-m := broken_toa.o\n")
            (src / "broken_toa.c").write_text("#include <linux/module.h>\nint x = ;\n")
            kbuild.build_module(src, knit_kernel, cache=cache)
        else:                     # clang -target bpf, no kernel involved
            (src / "broken_toa.c").write_text("#include <linux/bpf.h>\nint x = ;\n")
            kbuild.build_bpf(src / "broken_toa.c", cache=cache)
    assert "broken_toa.c:2" in str(e.value) and "error:" in str(e.value)


def test_stats_count_each_handshake_and_peer_query(toa_net: ToaNet, toa_needs) -> None:
    toa_needs(*STATS_ROWS)
    before = toa_net.stats()
    toa_net.connect(Conn(ack_opts=toa(*A)), Conn(ack_opts=toa(*B)), Conn())
    d = toa_stats.delta(before, toa_net.stats())
    assert (d["syn_recv_sock_toa"], d["syn_recv_sock_no_toa"]) == (2, 1)
    assert d["getname_toa_ok"] == 4            # accept() and getpeername() of each TOA conn
    assert d["getname_toa_mismatch"] == 0
    assert d["getname_toa_empty"] >= 2         # the plain conn (others may query too)
    assert d["getname_toa_bypass"] >= 3        # getsockname() is never rewritten


def test_1000_concurrent_connections_each_get_their_own_address(toa_net: ToaNet) -> None:
    n = 1000
    want = {f"t{i}": (f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}", 1024 + i)
            for i in range(n)}
    out = toa_net.connect_raw([Conn(ack_opts=toa(*a), tag=t) for t, a in want.items()],
                              timeout=240)
    got = {r["tag"]: tuple(r.get("getpeername", ())) for r in out["results"]}
    assert got == want
    if out["entries_open"] is not None:   # live entries: all held, then all freed
        assert (out["entries_open"], out["entries_closed"]) == (n, 0)


def test_unload_while_connections_are_open_and_queried(vm: VM, toa_net: ToaNet) -> None:
    # kmod: rmmod; bpf: detach the programs from the cgroup (its "unload").
    out = toa_net.unload_while_open(Conn(ack_opts=toa(*A)), Conn(ack_opts=toa(*B)))
    assert [r["getpeername"] for r in out["before"]] == [list(A), list(B)]
    assert out["unload_rc"] == 0 and out["gone"], out["unload_error"]
    # Each socket was queried while the TOA was there and again after it was gone.
    assert out["calls_before_unload"] >= 2 and out["calls_after_unload"] >= 2, out
    assert not out["errors"], out["errors"]
    # Without the TOA every socket reports its real peer again.
    assert out["after"] == [r["real"] for r in out["before"]]
    assert not out["leftover"]    # kmod: no /proc/net/toa_stats; bpf: nothing attached
    if toa_net.kind == "kmod":   # bpf/toa writes nothing to the kernel log
        assert last_toa_line(vm).endswith("TOA: toa unloaded")


def test_a_reconnected_socket_reports_its_real_new_peer(toa_net: ToaNet, toa_needs) -> None:
    toa_needs("getname_toa_mismatch")
    out = toa_net.reconnect(Conn(ack_opts=toa(*A)))
    assert out["first"]["getpeername"] == list(A)
    assert out["after_reconnect"] == out["reconnected_to"]
    assert out["reconnected_to"][0] == SRV4
    assert out["delta"]["getname_toa_mismatch"] == 1


def test_children_never_accepted_are_freed_with_the_listener(toa_net: ToaNet,
                                                             toa_needs) -> None:
    toa_needs(entries=True)
    out = toa_net.unaccepted(*(Conn(ack_opts=toa(*A)) for _ in range(3)))
    assert (out["queued"], out["after_listener_close"]) == (3, 0)
