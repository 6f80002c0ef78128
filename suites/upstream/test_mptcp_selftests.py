"""The kernel's own net/mptcp selftests as pytest items, one per script or join group.

Each runs in the knit VM of its kernel with the health check and artifacts of any knit
test; its TAP cases are parsed and the item fails naming the first failed case.
"""

import pytest

from knit import ktap, selftests

TARGET = selftests.MPTCP
pytestmark = [pytest.mark.nightly, pytest.mark.kconfig("CONFIG_MPTCP")]


def test_selftest(vm, knit_kernel, selftest, artifacts_dir, request):
    if not selftest[0].startswith("./"):  # collection could not fetch the tree
        pytest.skip(f"upstream selftests unavailable: {selftest[0]}")
    tree = selftests.fetch(knit_kernel)
    where = selftests.build(tree, TARGET)
    if request.config.getoption("selftest_capture") and tree.captures(TARGET, selftest[0][2:]):
        where, selftest = tree.copy_target(TARGET, artifacts_dir / "run"), [*selftest, "-c"]
    r = vm.run(selftest, cwd=str(where), check=False, timeout=vm.t(tree.timeout(TARGET)))
    (artifacts_dir / "output.log").write_text(r.stdout + r.stderr)
    cases = ktap.parse(r.stdout)
    # One JUnit property per TAP case: "case 12 - name" = outcome.
    request.node.user_properties += [(ktap.prop_name(c), c.outcome) for c in cases]
    failed = [c for c in cases if c.outcome == "failed"]
    if r.rc == 4 and not failed:  # kselftest's SKIP
        reason = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"{selftest[0]} skipped itself: {reason}")
    assert not r.timed_out, f"{' '.join(selftest)} timed out; see {artifacts_dir}/output.log"
    assert not failed, f"{len(failed)} case(s) failed, first: {failed[0].number} {failed[0].name}"
    assert r.rc == 0, f"{' '.join(selftest)} exited {r.rc} with no failed TAP case"
