"""The kernel-health oracle on real captured kernel output."""

import re
from pathlib import Path

import pytest

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


def reports() -> list[tuple[str, list[str]]]:
    """The '## kind' sections of data/kernel_reports.txt, in order."""
    out: list[tuple[str, list[str]]] = []
    for line in lines("kernel_reports.txt"):
        if line.startswith("## "):
            out.append((line[3:], []))
        elif out:
            out[-1][1].append(line)
    return out


REPORTS = [r for r in reports() if r[0] != "ordinary"]
[ORDINARY] = [text for kind, text in reports() if kind == "ordinary"]
[WARN] = ["\n".join(text) for kind, text in REPORTS if kind == "warning"]


@pytest.mark.parametrize(("kind", "report"), REPORTS, ids=[k for k, _ in REPORTS])
def test_each_kind_of_report_is_one_fault_with_its_whole_trace(kind, report):
    [fault] = health.scan(report)
    assert fault.kind == kind
    last = [ln for ln in "\n".join(report).replace("\\x0a", "\n").splitlines() if ln][-1]
    assert fault.trace.splitlines()[-1] == last


def test_a_report_ends_where_the_kernel_ends_it():
    after = "[  210.900000] IPv6: ADDRCONF(NETDEV_CHANGE): veth0: link becomes ready"
    [kasan] = [text for kind, text in REPORTS if kind == "kasan"]
    [fault] = health.scan([*kasan, after])
    assert "IPv6" not in fault.trace


def test_a_kmsg_record_with_escaped_newlines_gives_its_frames():
    [fault] = health.scan(next(text for kind, text in REPORTS if kind == "ref-tracker"))
    assert health.frames(fault.trace.splitlines()) == ["dst_init", "dst_alloc", "ip6_dst_alloc"]


def test_ordinary_lines_are_not_findings():
    assert health.scan(ORDINARY) == []


def test_frames_drop_unreliable_frames_offsets_and_reporting():
    [fault] = health.scan(WARN.splitlines())
    assert health.frames(fault.trace.splitlines())[:6] == [
        "__mptcp_clean_una", "__mptcp_clean_una_wakeup", "mptcp_release_cb", "release_sock",
        "mptcp_sendmsg", "__sys_sendto"]
    assert fault.signature == ("warning:__mptcp_clean_una:__mptcp_clean_una_wakeup:"
                               "mptcp_release_cb:release_sock:mptcp_sendmsg")
    assert f"fingerprint {fault.fingerprint}" in str(fault)


def _moved(report: str) -> str:
    """The same bug on another boot: other times, offsets, addresses, module build."""
    out = re.sub(r"\[ *\d+\.\d+\]", "[ 1234.567890]", report)
    out = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "+0x11/0x99", out)
    return out.replace("mptcp_sendmsg+0x11/0x99", "mptcp_sendmsg+0x11/0x99 [mptcp]")


def test_the_fingerprint_is_stable_across_boots_and_differs_between_bugs():
    [a] = health.scan(WARN.splitlines())
    [b] = health.scan(_moved(WARN).splitlines())
    assert a.trace != b.trace and a.fingerprint == b.fingerprint
    [c] = health.scan(WARN.replace("release_sock", "lock_sock_nested").splitlines())
    assert c.fingerprint != a.fingerprint
    [d] = health.scan(next(text for kind, text in REPORTS if kind == "refcount"))
    assert len({a.fingerprint, d.fingerprint}) == 2 and len(a.fingerprint) == 12


def test_a_report_without_frames_is_fingerprinted_by_its_line():
    one = health.scan(["[   49.180802] WARNING: knit synthetic fault"])[0]
    two = health.scan(["[  312.000001] WARNING: knit synthetic fault"])[0]
    assert one.fingerprint == two.fingerprint
    assert one.signature == "warning:WARNING: knit synthetic fault"


def test_records_userspace_wrote_to_kmsg_are_no_kernel_report():
    # A debian-6.12 (6.12.118+deb13) boot under virtme-ng 1.42: virtme-ng-init logs its
    # own failures to kmsg.
    from knit.guest import agent
    line = ('[   12.608949] ' + agent.USER_MARK + 'virtme-ng-init: WARNING: failed to run: '
            '"systemd-tmpfiles" --create --boot --exclude-prefix=/dev --exclude-prefix=/root')
    assert agent.USER_MARK == health.USER_MARK
    assert health.scan([line]) == []
    assert len(health.scan([line.replace(agent.USER_MARK, "")])) == 1
