"""The kernel-health oracle on real captured kernel output."""

from pathlib import Path

from knit import health

DATA = Path(__file__).parent / "data"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def test_panic_console_gives_each_fault_with_its_own_trace():
    # The capture holds the synthetic WARNING of an earlier test, then the panic.
    warning, panic = health.scan(lines("console_sysrq_panic_6.12.117.txt"))
    assert warning.first_line.endswith("WARNING: knit synthetic fault")
    assert "Kernel panic" not in warning.trace
    assert "Kernel panic - not syncing: sysrq triggered crash" in panic.first_line
    assert "sysrq_handle_crash" in panic.trace
    assert "Call Trace" in panic.trace  # part of the panic, not a fault of its own


def test_loading_an_out_of_tree_module_is_not_a_fault():
    text = lines("dmesg_toa_load_6.12.117.txt")
    assert any("taints kernel" in line for line in text)
    assert health.scan(text) == []


def test_leftovers_names_netns_modules_and_sysctls():
    before = {"netns": [], "modules": {"veth": ""},
              "sysctl": {"net.ipv4.ip_forward": "0", "net.mptcp.enabled": "1"}}
    after = {"netns": ["ns1"], "modules": {"veth": "", "toa": "OE", "tipc": ""},
             "sysctl": {"net.ipv4.ip_forward": "1", "net.mptcp.enabled": "1",
                        "net.tipc.named_timeout": "2000"}}
    assert health.leftovers(before, after) == [
        "netns ns1 left behind",
        "out-of-tree module toa left loaded",
        "sysctl net.ipv4.ip_forward changed: '0' -> '1'",
    ]
    assert health.leftovers(before, before) == []
