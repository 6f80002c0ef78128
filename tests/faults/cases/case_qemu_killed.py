"""Fault: qemu is killed from the host in the middle of a test."""

import os
import signal


def test_fault(vm):
    with vm.spawn(["sleep", "600"]):
        os.kill(vm.qemu_pid(), signal.SIGKILL)
        vm.run(["true"], timeout=10)


def test_after(vm):
    assert vm.run(["true"]).ok
