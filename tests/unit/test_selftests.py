"""Which selftest scripts take -c, and the private copy capture runs use."""

from pathlib import Path

from knit.selftests import Tree


def _tree(tmp_path: Path) -> Tree:
    d = tmp_path / "tools" / "testing" / "selftests" / "net" / "mptcp"
    d.mkdir(parents=True)
    # The three forms in 6.12's net/mptcp: getopts with a literal, an optstring
    # variable with a quoted case, and a script without -c.
    (d / "mptcp_join.sh").write_text('while getopts "${all_tests_args}cCih" opt; do\n')
    (d / "mptcp_connect.sh").write_text('optstring="S:R:h4cm:f:tC"\n\t"c")\n\t\tcapture=1\n')
    (d / "diag.sh").write_text('#!/bin/bash\nip netns add "$ns"\n')
    (d / "mptcp_connect").write_bytes(b"\x7fELF")
    (d.parent / "lib.sh").write_text("setup_ns() { :; }\n")  # mptcp_lib.sh: . ../lib.sh
    (d.parent.parent / "kselftest").mkdir()
    return Tree("6.12.117-1~deb12u1", tmp_path)


def test_capture_support_read_from_the_script(tmp_path):
    t = _tree(tmp_path)
    assert [s for s in t.scripts("net/mptcp") if t.captures("net/mptcp", s)] == \
        ["mptcp_connect.sh", "mptcp_join.sh"]


def test_copy_target_is_private(tmp_path):
    t = _tree(tmp_path)
    run = t.copy_target("net/mptcp", tmp_path / "art" / "run")
    assert run == tmp_path / "art" / "run" / "net" / "mptcp"
    (run / "01-pcap.pcap").write_bytes(b"")
    assert (run / "mptcp_connect").read_bytes() == b"\x7fELF"
    # What the scripts source from their parents resolves from the copy too.
    assert (run / ".." / "lib.sh").read_text() == "setup_ns() { :; }\n"
    assert (run / ".." / ".." / "kselftest").is_dir()
    assert not (t.target_dir("net/mptcp") / "01-pcap.pcap").exists()
