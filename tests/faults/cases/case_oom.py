"""Fault: the guest runs out of memory; the OOM report (a Call Trace) fails the test."""


def test_fault(vm):
    hog = "a = []\nwhile True:\n    a.append(bytearray(64 << 20))"
    vm.run([vm.python, "-S", "-c", hog], check=False, timeout=vm.scaled(60))


def test_after(vm):
    assert vm.run(["true"]).ok
