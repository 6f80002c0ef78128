"""Real kernel reports from knit's fault module (tests/faults/kmod/knit_fault): each must
fail the test that caused it, never be retried away, and leave the next test clean.

Run with --flake-retries 1 by tests/faults/test_faults.py; the order matters (each fault
test is followed by a clean one on the VM that replaces the faulty one).
"""

from pathlib import Path

import pytest

from knit import kbuild
from knit.paths import ROOT
from knit.plugin import SETTLE_S, VM_KEY

SRC = ROOT / "tests/faults/kmod/knit_fault"
PARAMS = Path("/sys/module/knit_fault/parameters")


class Fault:
    """The module's triggers: each write makes the kernel report one thing."""

    def __init__(self, vm):
        self.vm = vm

    def trigger(self, what: str, value: str = "1") -> None:
        self.vm.run(["tee", str(PARAMS / what)], input=value)


@pytest.fixture
def fault(request, vm, knit_kernel):
    """knit_fault loaded and kept loaded (a timer a test arms must outlive the test), and
    part of the VM's baseline, so the leftovers check does not count it."""
    ko = kbuild.build_module(SRC, knit_kernel)
    if not vm.run(["test", "-d", str(PARAMS)], check=False).ok:
        vm.run(["insmod", str(ko.path)])
        entry = request.node.stash[VM_KEY]
        entry.pool.baseline[entry.key]["modules"]["knit_fault"] = "O"
    return Fault(vm)


def test_warn_in_test(fault):
    fault.trigger("warn")


def test_after_warn_in_test(vm):
    assert vm.run(["true"]).ok


def test_warn_in_netns_exit(vm, fault):
    # The netns dies after the test body: its pernet exit runs in cleanup_net, later.
    fault.trigger("warn_netns_exit")
    vm.call("knit.guest.netns:create_netns", name="doomed")
    vm.call("knit.guest.netns:destroy", names=["doomed"])


def test_after_warn_in_netns_exit(vm):
    assert vm.run(["true"]).ok


def test_warn_from_timer_after_the_test(vm, fault):
    # Inside the default settle window, after the netns canary: only the quiet wait catches
    # it (KNIT_SETTLE_S=0 shows it land in the next test).
    fault.trigger("warn_after_ms", str(int(vm.scaled(SETTLE_S) * 700)))


def test_after_warn_from_timer(vm):
    assert vm.run(["true"]).ok


def test_warn_on_first_attempt_only(fault, pytestconfig):
    mark = Path(pytestconfig.getoption("knit_artifacts")) / "first-attempt-done"
    if not mark.exists():
        mark.write_text("x")
        fault.trigger("warn")


def test_after_warn_on_first_attempt(vm):
    assert vm.run(["true"]).ok


def test_leak(vm, fault):
    if not vm.run(["test", "-e", "/sys/kernel/debug/kmemleak"], check=False).ok:
        pytest.skip(f"{vm.cfg.kernel.name} has no kmemleak (CONFIG_DEBUG_KMEMLEAK): "
                    "use --kernel src-6.12-debug")
    fault.trigger("leak", "256")


def test_after_leak(vm):
    assert vm.run(["true"]).ok
