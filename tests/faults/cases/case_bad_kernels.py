"""Faults: a corrupt kernel image, and a kernel that never reaches the agent."""


def test_fault(vm):
    assert vm.run(["true"]).ok
