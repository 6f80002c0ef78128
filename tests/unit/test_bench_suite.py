"""knit bench --suite reads pytest's own closing line; no line means no usable run."""

from knit.bench_suite import counts


def test_counts_come_from_the_last_summary_line():
    out = ("... warnings ...\n= 2 failed in 1.0s =\n"
           "================== 38 passed, 1 xfailed, 2 skipped in 180.10s (0:03:00) ====\n")
    assert counts(out) == {"passed": 38, "xfailed": 1, "skipped": 2}


def test_no_summary_is_no_result():
    assert counts("INTERNALERROR> boom\n") == {}


def test_quiet_summary_without_the_frame_counts_too():
    assert counts("....\n39 passed in 103.96s (0:01:43)\n") == {"passed": 39}
