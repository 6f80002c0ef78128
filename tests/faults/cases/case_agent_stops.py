"""Fault: the guest agent stops answering while the kernel keeps running."""


def test_fault(vm):
    vm.run(["kill", "-STOP", str(vm.ready["pid"])], timeout=5)


def test_after(vm):
    assert vm.run(["true"]).ok
