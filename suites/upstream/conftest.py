"""Upstream selftests matching each kernel: fetched and built on the host, run in knit VMs."""

from __future__ import annotations

import pytest

from knit import kernels, ktap, selftests
from knit.errors import KnitError
from knit.plugin import kernel_names

TARGET = selftests.MPTCP


def _items(name: str, fetch: bool) -> list[tuple[str, list[str]]]:
    """(id, argv) per script of the target; mptcp_join.sh gets one item per group."""
    try:
        k = kernels.ensure(name)
        tree = selftests.fetch(k) if fetch else selftests.cached(k)
    except KnitError as e:
        return [(f"unavailable-{name}", [str(e)])]
    if tree is None:
        return [("not-fetched", ["run with --nightly or name suites/upstream to fetch them"])]
    out = []
    for script in tree.scripts(TARGET):
        if script == "mptcp_join.sh":
            text = (tree.target_dir(TARGET) / script).read_text()
            for opt, group in ktap.join_groups(text).items():
                out.append((f"mptcp_join-{group}", [f"./{script}", f"-{opt}"]))
        else:
            out.append((script.removesuffix(".sh"), [f"./{script}"]))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "selftest" in metafunc.fixturenames:
        cfg = metafunc.config
        # A default run deselects these items: don't download a kernel source for them.
        fetch = bool(cfg.getoption("nightly") or cfg.getoption("markexpr")
                     or cfg.args_source != pytest.Config.ArgsSource.TESTPATHS)
        # Collected from the first kernel's tree: the scripts are the same per series.
        items = _items(kernel_names(cfg)[0], fetch)
        metafunc.parametrize("selftest", [pytest.param(argv, id=i, marks=_marks(i))
                                          for i, argv in items])


def _marks(item_id: str) -> list[pytest.MarkDecorator]:
    if item_id.removeprefix("mptcp_join-") in selftests.PACED_JOIN_GROUPS:
        return [pytest.mark.exclusive("paces its removals by wall clock")]
    return []
