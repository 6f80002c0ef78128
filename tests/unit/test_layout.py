"""The layout the README promises: the library's imports go one way and in no circle, and
each suite's helpers live in suites/<suite>/lib/ (fixtures/ only for what suites share)."""

from __future__ import annotations

import ast
from pathlib import Path

from knit.paths import ROOT

SUITES = sorted(p.name for p in (ROOT / "suites").iterdir() if (p / "__init__.py").exists())
# Library modules named after a suite on purpose: `knit toa` deploys bpf/toa on real hosts.
LIBRARY_FEATURES = {"knit.toa_deploy", "knit.toa_counters", "knit.mptcpify"}  # knit commands


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every module `path` imports, at the top or inside a function (lazy imports count:
    they run too). `from pkg import sub` imports pkg.sub when that is one of `modules`,
    else pkg (a package's __init__ running first is no edge: Python handles that order)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            if len(subs) < len(node.names):
                found.add(node.module)
            found |= subs
    return found


def library() -> dict[str, set[str]]:
    """knit module -> the knit modules it imports."""
    mods = {module_name(p): p for p in (ROOT / "knit").rglob("*.py")}
    known = frozenset(mods)
    return {m: {i for i in imports(p, known) if i in mods and i != m} for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it."""
    found, done = [], set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            found.append(path[path.index(m):] + [m])
            return
        if m in done:
            return
        for n in sorted(graph.get(m, ())):
            visit(n, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
    return found


def test_the_library_has_no_import_circle():
    assert cycles(library()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_library_imports_no_suite_code():
    bad = {m: sorted(i for i in imports(p) if i.split(".")[0] in ("suites", "fixtures", "bpf"))
           for p in (ROOT / "knit").rglob("*.py") if (m := module_name(p))}
    assert {m: i for m, i in bad.items() if i} == {}


def test_suite_helpers_live_in_their_suite():
    # Python under bpf/ or a knit/ module named after a suite is a helper in the wrong place.
    stray = [str(p.relative_to(ROOT)) for p in (ROOT / "bpf").rglob("*.py")]
    stray += [m for p in (ROOT / "knit").rglob("*.py") if (m := module_name(p))
              not in LIBRARY_FEATURES and any(m.split(".")[-1].startswith(s) for s in SUITES)]
    assert stray == []


def test_fixtures_hold_only_what_several_suites_use():
    users: dict[str, set[str]] = {}
    for p in (ROOT / "suites").rglob("*.py"):
        suite = p.relative_to(ROOT / "suites").parts[0]
        for i in imports(p, frozenset(module_name(f) for f in (ROOT / "fixtures").glob("*.py"))):
            if i.startswith("fixtures."):
                users.setdefault(".".join(i.split(".")[:2]), set()).add(suite)
    own = {module_name(p) for p in (ROOT / "fixtures").glob("*.py") if p.name != "__init__.py"}
    assert {m: sorted(users.get(m, ())) for m in own if len(users.get(m, ())) < 2} == {}


def test_a_suite_imports_no_other_suites_helpers():
    crossing = []
    for p in (ROOT / "suites").rglob("*.py"):
        suite = p.relative_to(ROOT / "suites").parts[0]
        crossing += [f"{p.relative_to(ROOT)}: {i}" for i in imports(p)
                     if i.startswith("suites.") and i.split(".")[1] != suite]
    assert crossing == []
