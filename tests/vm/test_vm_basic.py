"""The harness on a real kernel: boot, run, call, spawn, topology, health oracle."""

import pytest

from knit import kbuild
from knit.errors import ChannelError, CmdFailed
from knit.paths import ROOT
from knit.topology import pair


def test_boot_run_and_call(vm, knit_kernel):
    assert vm.run(["uname", "-r"]).stdout.strip() == knit_kernel.version
    assert vm.call("os:getuid") == 0
    with pytest.raises(CmdFailed) as e:
        vm.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (e.value.rc, e.value.stdout, e.value.stderr) == (3, "out\n", "err\n")
    assert vm.run(["false"], check=False).rc == 1
    assert vm.run(["pwd"], cwd="/proc").stdout == "/proc\n"


def test_spawn_waits_for_ready_and_stops_with_sigint(vm):
    script = "trap 'echo got-int; exit 0' INT; echo ready; while :; do sleep 0.1; done"
    with vm.spawn(["sh", "-c", script], ready="^ready$") as proc:
        assert proc.pid > 0
    assert proc.result.rc == 0
    assert proc.result.stdout == "ready\ngot-int\n"


@pytest.mark.parametrize("family, dst", [(4, "10.0.1.2"), (6, "dead:beef:1::2")])
def test_two_namespaces_ping_over_veth(vm, topo, family, dst):
    t = topo(pair(paths=1))
    r = vm.run(["ping", f"-{family}", "-c", "2", "-i", "0.2", "-W", "5", dst], ns="ns1")
    assert " 0% packet loss" in r.stdout
    back = t.addr("ns1", "ns1eth1", family)
    assert vm.run(["ping", f"-{family}", "-c", "1", "-W", "5", back], ns="ns2").ok
    # The nodes are real namespaces: ns1 cannot see ns2's interface.
    assert "ns2eth1" not in vm.run(["ip", "-o", "link"], ns="ns1").stdout


@pytest.mark.expect_kernel_fault(r"WARNING: .* set_warn\+")
def test_health_check_catches_a_warning(vm, knit_kernel):
    # A real WARN from the kernel (tests/faults/kmod/knit_fault): a line that userspace
    # writes to /dev/kmsg is no kernel report, and the health check ignores it.
    ko = kbuild.build_module(ROOT / "tests/faults/kmod/knit_fault", knit_kernel)
    vm.run(["tee", "/dev/kmsg"], input="WARNING: written by userspace\n")
    with kbuild.loaded(vm, ko):
        vm.run(["tee", "/sys/module/knit_fault/parameters/warn"], input="1")


@pytest.mark.kills_vm
def test_panic_is_detected_and_the_vm_replaced(vm, knit_pool, knit_kernel):
    with pytest.raises(ChannelError):
        vm.run(["sh", "-c", "echo c > /proc/sysrq-trigger"], timeout=vm.scaled(20))
    assert vm.dirty
    assert "sysrq: Trigger a crash" in vm.console_tail(200)
    fresh = knit_pool.get(knit_kernel.name, vm.cfg.userspace.name)
    assert fresh is not vm and fresh.run(["true"]).ok


def test_next_test_passes_after_a_panic(vm):
    assert vm.alive and vm.run(["cat", "/proc/sys/kernel/tainted"]).ok
