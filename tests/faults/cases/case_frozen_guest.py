"""Fault: the whole guest freezes (qemu stopped from the host): the channel times out."""

import os
import signal


def test_fault(vm):
    os.kill(vm.qemu_pid(), signal.SIGSTOP)
    vm.run(["true"], timeout=5)


def test_after(vm):
    assert vm.run(["true"]).ok
