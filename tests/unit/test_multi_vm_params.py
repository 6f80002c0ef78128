"""multi_vm wiring without a VM: ids name both kernels, --peer-kernel parametrizes, a test
with a peer must carry the marker; traffic.merge joins a client and a remote server."""

import pytest

from suites.mptcp.lib.traffic import merge

pytest_plugins = ["pytester"]
PLUGINS = ("-p", "knit.plugin", "-p", "knit.plugin_report", "-p", "no:randomly")
PAIR_TEST = """
import pytest

@pytest.mark.multi_vm
def test_x(knit_kernel, peer):
    pass

def test_single(knit_kernel):
    pass
"""


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    r = pytester.runpytest_subprocess("--collect-only", "-q", *PLUGINS, *args)
    return [line for line in r.outlines if "::" in line]


def test_ids_name_both_kernels(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pair=PAIR_TEST)
    assert collected(pytester, "--kernel", "debian-6.12", "--peer-kernel", "debian-6.1",
                     "--peer-kernel", "debian-6.12") == [
        "test_pair.py::test_x[debian-6.12-debian-6.1]",
        "test_pair.py::test_x[debian-6.12-debian-6.12]",
        "test_pair.py::test_single[debian-6.12]"]


def test_default_peer_is_the_tests_own_kernel(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pair=PAIR_TEST)
    assert collected(pytester, "--kernel", "debian-6.1", "-m", "multi_vm") == \
        ["test_pair.py::test_x[debian-6.1-debian-6.1]"]


def test_a_peer_without_the_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad="def test_y(knit_kernel, peer):\n    pass\n")
    r = pytester.runpytest_subprocess("--collect-only", "-q", *PLUGINS, "--kernel", "k")
    assert "test_y uses `peer`: mark it @pytest.mark.multi_vm" in r.stdout.str() + r.stderr.str()


def test_merge_checks_both_directions() -> None:
    client = {"size": 3, "reply": 2, "sent_sha256": "up", "received": 2,
              "received_sha256": "down", "aborted": False}
    ok = merge(dict(client), {"received": 3, "received_sha256": "up", "sent_sha256": "down"},
               None)
    assert ok["intact"] and "server_error" not in ok
    bad = merge(dict(client), {"received": 3, "received_sha256": "up", "sent_sha256": "x"},
                "server: boom")
    assert not bad["intact"] and bad["server_error"] == "server: boom"
