"""The kernel's own net/mptcp selftests as pytest items, one per script or join group.

Each runs in the knit VM of its kernel with the health check and artifacts of any knit
test; its TAP cases are parsed and the item fails naming the first failed case.
"""

import pytest

from knit import ktap, selftests
from knit.plugin_report import RETRIED_WITHIN

TARGET = selftests.MPTCP
pytestmark = [pytest.mark.nightly, pytest.mark.kconfig("CONFIG_MPTCP")]


def test_selftest(vm, knit_kernel, selftest, artifacts_dir, request):
    if not selftest[0].startswith("./"):  # collection could not fetch the tree
        pytest.skip(f"upstream selftests unavailable: {selftest[0]}")
    tree = selftests.fetch(knit_kernel)
    where = selftests.build(tree, TARGET)
    script = selftest[0][2:]
    if request.config.getoption("selftest_capture") and tree.captures(TARGET, script):
        where, selftest = tree.copy_target(TARGET, artifacts_dir / "run"), [*selftest, "-c"]
    run = Runner(vm, where, vm.scaled(tree.timeout(TARGET)), artifacts_dir)
    r, cases = run(selftest, "output.log")
    if tree.reruns_cases(TARGET, script) and not r.timed_out:
        r, cases = run.retry_failed(selftest, r, cases, request)
    # One JUnit property per TAP case: "case 12 - name" = outcome.
    request.node.user_properties += [(ktap.prop_name(c), c.outcome) for c in cases]
    failed = [c for c in cases if c.outcome == "failed"]
    if r.rc == 4 and not failed:  # kselftest's SKIP
        reason = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"{selftest[0]} skipped itself: {reason}")
    assert not r.timed_out, f"{' '.join(selftest)} timed out; see {artifacts_dir}/output.log"
    assert not failed, f"{len(failed)} case(s) failed, first: {failed[0].number} {failed[0].name}"
    assert r.rc == 0, f"{' '.join(selftest)} exited {r.rc} with no failed TAP case"


class Runner:
    """Runs a selftest argv in the VM, keeping each run's full output in the artifacts."""

    def __init__(self, vm, where, timeout, artifacts_dir):
        self.vm, self.where, self.timeout, self.dir = vm, str(where), timeout, artifacts_dir

    def __call__(self, argv, log):
        r = self.vm.run(argv, cwd=self.where, check=False, timeout=self.timeout)
        (self.dir / log).write_text(r.stdout + r.stderr)
        return r, ktap.parse(r.stdout)

    def retry_failed(self, argv, r, cases, request):
        """The flake policy at case level: under --flake-retries N, rerun only the failed
        cases (by number), up to N times; a whole group would repeat minutes of passes."""
        for n in range(1, request.config.getoption("flake_retries") + 1):
            failed = [c for c in cases if c.outcome == "failed"]
            if not failed:
                break
            if n == 1:
                first = f"case {failed[0].number} {failed[0].name} failed, {len(failed)} in all"
                request.node.user_properties.append((RETRIED_WITHIN, first))
            r, again = self([*argv, *(str(c.number) for c in failed)], f"output-retry{n}.log")
            cases = ktap.merge_retry(cases, again)
        return r, cases
