"""Fault: the kernel panics in the middle of a test."""


def test_fault(vm):
    vm.run(["sh", "-c", "echo c > /proc/sysrq-trigger"], timeout=vm.scaled(20))


def test_after(vm):
    assert vm.run(["true"]).ok
