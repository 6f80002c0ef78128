"""Known kernel issues: the file's format, which kernels an issue affects, what it explains."""

from pathlib import Path

import pytest

from knit import health, known
from knit.errors import KnitError

WARN = ["[   61.371206] WARNING: CPU: 1 PID: 312 at net/mptcp/protocol.c:1022 "
        "__mptcp_clean_una+0x2f1/0x330",
        "[   61.372359] RIP: 0010:__mptcp_clean_una+0x2f1/0x330",
        "[   61.373900]  __mptcp_clean_una_wakeup+0x2b/0x50",
        "[   61.374000]  mptcp_release_cb+0x1a8/0x230"]


def write(tmp_path, text):
    p = tmp_path / "known-issues.toml"
    p.write_text(text)
    return p


def test_the_shipped_file_parses_and_each_issue_points_upstream():
    issues = known.load()
    assert [i.id for i in issues] == ["mptcp-dss-not-matching", "kasan-la57-identify-cpu"]
    assert all(i.reference.startswith("https://") for i in issues)


def test_the_la57_kasan_false_positive_at_boot_is_known_by_its_fingerprint_and_text():
    log = (Path(__file__).parent / "data" / "kasan_la57_boot_6.12.118-debug.txt")
    [fault] = health.scan(log.read_text().splitlines())
    issues = known.load()
    assert (fault.kind, fault.fingerprint) == ("kasan", "f15909917ecb")
    assert known.match(issues, "src-6.12-debug", "6.12.118-virtme", "", [fault.fingerprint]) \
        .id == "kasan-la57-identify-cpu"
    assert known.match(issues, "src-6.12-debug", "6.12.118-virtme", str(fault), []) \
        .id == "kasan-la57-identify-cpu"
    # The same KASAN report outside identify_cpu is not this issue.
    other = str(fault).replace("identify_cpu+", "tcp_v4_rcv+")
    assert known.match(issues, "src-6.12-debug", "6.12.118-virtme", other, []) is None


def test_an_issue_matches_by_fingerprint_on_the_kernels_it_affects(tmp_path):
    [fault] = health.scan(WARN)
    [it] = known.load(write(tmp_path, f"""
[[issue]]
id = "warn-clean-una"
reference = "a text is enough"
fingerprint = ["{fault.fingerprint}"]
kernels = ["debian-6.12", "src-*"]
"""))
    assert known.match([it], "debian-6.12", "6.12.117+deb12-amd64", str(fault),
                       [fault.fingerprint]) is it
    assert known.match([it], "src-6.12-debug", "6.12.0", "", [fault.fingerprint]) is it
    assert known.match([it], "debian-6.1", "6.1.0-56-amd64", "", [fault.fingerprint]) is None
    assert known.match([it], "debian-6.12", "6.12.117", "", ["0123456789ab"]) is None
    assert known.match([it], None, None, "", [fault.fingerprint]) is None  # no kernel: no match


def test_an_issue_matches_by_signature_within_version_ranges(tmp_path):
    [it] = known.load(write(tmp_path, """
[[issue]]
id = "dss"
reference = "https://example.invalid/report"
signature = 'MPTcpExtDSSNotMatching \\d+'
versions = [">=6.12, <6.12.120", "==7.3"]
"""))
    text = "AssertionError: reset: MPTcpExtDSSNotMatching 1"
    assert known.match([it], "debian-6.12", "6.12.117+deb12-amd64", text) is it
    assert known.match([it], "debian-6.12", "6.12.120+deb13-amd64", text) is None
    assert known.match([it], "debian-7.3", "7.3.4+deb13-amd64", text) is it
    assert known.match([it], "debian-6.1", "6.1.0-56-amd64", text) is None
    assert known.match([it], "debian-6.12", "6.12.117", "AssertionError: 3 == 4") is None
    assert str(it) == "dss: https://example.invalid/report"


@pytest.mark.parametrize(("version", "spec", "inside"), [
    ("6.12.117+deb12-amd64", "<=6.12", True),      # a bound compares its own length
    ("6.12.117+deb12-amd64", "<=6.12.116", False),
    ("6.12.117+deb12-amd64", ">6.12.116, <6.13", True),
    ("6.1.0-56-amd64", ">=6.1, <6.2", True),          # Debian's ABI number is not a release
    ("6.1.0-56-amd64", ">=6.1.56", False),
    ("", ">=1", False),
])
def test_version_ranges(version, spec, inside):
    assert known.in_range(version, spec) is inside


@pytest.mark.parametrize(("body", "error"), [
    ('id = "x"\nreference = "r"\n', "give a fingerprint or a signature"),
    ('id = "x"\nsignature = "a"\n', "needs an id and a reference"),
    ('id = "x"\nreference = "r"\nsignture = "a"\n', "unknown key(s) signture"),
    ('id = "x"\nreference = "r"\nsignature = "("\n', "bad signature regex"),
    ('id = "x"\nreference = "r"\nsignature = "a"\nversions = ["6.12"]\n', "bad version range"),
    ('id = "x"\nreference = "r"\nsignature = "a"\nkernels = [1]\n', "list of strings"),
])
def test_a_bad_entry_is_a_one_line_error(tmp_path, body, error):
    with pytest.raises(KnitError) as e:
        known.load(write(tmp_path, "[[issue]]\n" + body))
    assert error in str(e.value) and "\n" not in str(e.value)


def test_a_missing_file_has_no_issues(tmp_path):
    assert known.load(tmp_path / "none.toml") == []
