"""What `knit bisect` tells git for each step's outcomes."""

import pytest

from knit.bisect import BAD, GOOD, SKIP, verdict


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
