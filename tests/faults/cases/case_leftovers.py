"""Fault: tests that leave a netns or a changed sysctl behind fail at teardown."""


def test_fault_netns(vm):
    vm.call("knit.guest.netns:create_netns", name="leaked")


def test_fault_sysctl(vm):
    vm.call("knit.guest.netns:write_sysctl", key="net.ipv4.ip_forward", value="1")


def test_after(vm):
    state = vm.state()
    assert "leaked" not in state["netns"]
    assert state["sysctl"]["net.ipv4.ip_forward"] == "0"
