"""What `knit bisect` tells git for each step's outcomes."""

import pytest

from knit.bisect import BAD, GOOD, SKIP, judged, verdict


@pytest.mark.parametrize(("outcomes", "want"), [
    (["passed"], GOOD),
    (["passed", "skipped", "xfailed"], GOOD),
    (["flaky"], GOOD),
    (["passed", "failed"], BAD),
    (["failed", "error"], BAD),
    (["error"], SKIP),          # setup broke: the kernel did not boot or a tool is missing
    (["passed", "error"], SKIP),
    (["skipped"], SKIP),        # e.g. the config lacks the feature at this commit
    ([], SKIP),                 # nothing collected or results lost
])
def test_verdict(outcomes, want):
    assert verdict(outcomes) == want


@pytest.mark.parametrize(("tests", "want"), [
    ([{"outcome": "error", "faults": ["warning 0123456789ab"]}], BAD),  # a finding at teardown
    ([{"outcome": "passed"}, {"outcome": "error", "faults": []}], SKIP),  # e.g. state left
    ([{"outcome": "known"}], BAD),
    ([{"outcome": "flaky"}], GOOD),
    ([{"outcome": "passed", "cases": []}], GOOD),  # a results.json of before Record.faults
])
def test_a_kernel_fault_in_any_phase_is_bad(tests, want):
    assert verdict(judged(t) for t in tests) == want
