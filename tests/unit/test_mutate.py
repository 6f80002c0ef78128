"""knit mutate's engine without a VM: the catalogue and its validation, every pattern
against the real source it patches (the checkout's TOA, linux-source-6.12's net/tipc and
net/mptcp files in tests/unit/data/mutate), verdicts, the resumable store, the report."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from knit import cli
from knit.mutate import build, catalog, engine, report, run, store, tree, verdict
from knit.mutate.catalog import CatalogueError, Mutant
from knit.paths import ROOT

DATA = Path(__file__).parent / "data" / "mutate"
KSRC_TARGETS = DATA / "linux-source-6.12.118-1-targets.tar.xz"
TOA_C = ROOT / "kmod" / "toa" / "toa.c"


@pytest.fixture(scope="module")
def ksrc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real net/tipc and net/mptcp files of linux-source-6.12 6.12.118-1."""
    d = tmp_path_factory.mktemp("ksrc")
    with tarfile.open(KSRC_TARGETS) as tf:
        tf.extractall(d, filter="data")
    return d


def write(d: Path, folder: str, name: str, fields: dict) -> Path:
    p = d / folder / f"{name}.toml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items()))
    return p


GOOD = dict(suite="toa", target="kmod/toa/toa.c", description="an off-by-one",
            pattern="if (size < 2 || size > length)",
            replacement="if (size < 2 || size > length + 1)")


# -- the catalogue ----------------------------------------------------------------------

def test_catalogue_has_at_least_eight_mutants_per_suite() -> None:
    ms = catalog.load()
    counts = {s: sum(m.suite == s for m in ms) for s in catalog.SUITES}
    assert all(n >= 8 for n in counts.values()), counts
    assert {m.variant for m in ms if m.suite == "toa"} == {"kmod", "bpf"}
    assert all(m.description and "\n" not in m.description for m in ms)


def test_every_pattern_occurs_exactly_once_in_the_real_source(ksrc: Path) -> None:
    for m in catalog.load():
        root = ROOT if m.suite == "toa" else ksrc
        text = (root / m.target).read_text()
        assert text.count(m.pattern) == 1, m.id
        assert catalog.apply_text(text, m) != text


def test_the_source_fixture_is_the_tree_knit_extracts(ksrc: Path) -> None:
    """When the cache has linux-source-6.12 6.12.118-1, the fixture equals its files."""
    cached = Path.home() / ".cache" / "knit" / "ksrc" / "6.12.118-1" / "src"
    if not cached.is_dir():
        pytest.skip("linux-source-6.12 6.12.118-1 not extracted in the cache")
    for f in sorted(ksrc.rglob("*.[ch]")):
        assert f.read_bytes() == (cached / f.relative_to(ksrc)).read_bytes(), f


def test_a_well_formed_file_loads_with_its_stem_as_id(tmp_path: Path) -> None:
    write(tmp_path, "toa", "toa-off-by-one", GOOD)
    [m] = catalog.load(tmp_path)
    assert (m.id, m.variant, m.suite) == ("toa-off-by-one", "kmod", "toa")
    assert catalog.load(tmp_path, suite="tipc") == []


@pytest.mark.parametrize("change, message", [
    ({"description": None}, "missing or non-string description"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"suite": "bcc"}, "suite 'bcc' is not one of"),
    ({"target": "net/tipc/link.c"}, "must lie under kmod/toa/ or bpf/toa/"),
    ({"target": "kmod/toa/../../etc/passwd"}, "must lie under"),
    ({"pattern": ""}, "empty pattern"),
    ({"replacement": GOOD["pattern"]}, "the mutant changes nothing"),
    ({"description": "two\nlines"}, "one line"),
])
def test_a_malformed_file_is_refused_naming_the_fix(tmp_path: Path, change: dict,
                                                    message: str) -> None:
    fields = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    write(tmp_path, "toa", "bad", fields)
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        catalog.load(tmp_path)


def test_a_file_under_another_suite_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "tipc", "misfiled", GOOD)
    with pytest.raises(CatalogueError, match="move it to toa/"):
        catalog.load(tmp_path)


def test_a_pattern_that_is_not_unique_or_absent_does_not_apply() -> None:
    text = TOA_C.read_text()
    twice = Mutant("twice", "toa", "kmod/toa/toa.c", "d",
                   "TOA_INC(TOA_STAT_GETNAME_TOA_OK);", "")
    gone = Mutant("gone", "toa", "kmod/toa/toa.c", "d", "no such line in toa.c", "x")
    with pytest.raises(CatalogueError, match="occurs 2 times"):
        catalog.apply_text(text, twice)
    with pytest.raises(CatalogueError, match="occurs 0 times"):
        catalog.apply_text(text, gone)


def test_the_digest_follows_the_change_not_the_wording() -> None:
    a = Mutant("a", "toa", "kmod/toa/toa.c", "one wording", "x", "y")
    b = Mutant("a", "toa", "kmod/toa/toa.c", "another", "x", "y")
    c = Mutant("a", "toa", "kmod/toa/toa.c", "one wording", "x", "z")
    assert a.digest == b.digest != c.digest


# -- mutated copies ---------------------------------------------------------------------

def test_a_mutated_copy_differs_from_its_base_in_the_one_pattern(tmp_path: Path) -> None:
    [m] = [m for m in catalog.load(suite="toa") if m.id == "toa-kmod-port-host-order"]
    b = tree.base(m)
    copy = tree.mutated_copy(m, b, cache=tmp_path)
    assert copy.name == "toa" and (copy / "Makefile").exists()
    assert (copy / "toa.c").read_text() == TOA_C.read_text().replace(m.pattern, m.replacement)
    assert tree.mutated_copy(m, b, cache=tmp_path) == copy        # cached, same place
    assert TOA_C.read_text().count(m.pattern) == 1                # the checkout untouched


def test_a_tipc_mutant_copies_net_tipc_of_the_given_tree(ksrc: Path, tmp_path: Path) -> None:
    [m] = [m for m in catalog.load(suite="tipc") if m.id == "tipc-bearer-three-per-priority"]
    b = tree.base(m, ksrc)
    assert b.tree == ksrc / "net" / "tipc"
    copy = tree.mutated_copy(m, b, cache=tmp_path)
    assert m.replacement in (copy / "bearer.c").read_text()
    assert (copy / "link.c").read_text() == (ksrc / "net/tipc/link.c").read_text()


def test_an_mptcp_mutant_is_applied_and_restored_without_touching_the_clean_tree(
        ksrc: Path, tmp_path: Path) -> None:
    [m] = [m for m in catalog.load(suite="mptcp") if m.id == "mptcp-mp-prio-ignored"]
    clean = (ksrc / m.target).read_text()
    work = tree.work_tree(ksrc, cache=tmp_path)
    tree.apply_in(work, ksrc, m)
    assert (work / m.target).read_text() == clean.replace(m.pattern, m.replacement)
    assert (ksrc / m.target).read_text() == clean                 # the hard link was cut
    tree.restore(work, ksrc, m)
    assert (work / m.target).read_text() == clean


# -- verdicts ---------------------------------------------------------------------------

def rec(nodeid: str, outcome: str, **kw) -> dict:
    return {"nodeid": nodeid, "outcome": outcome, **kw}


@pytest.mark.parametrize("tests, want", [
    ([rec("a", "passed"), rec("b", "passed")], (verdict.SURVIVED, [])),
    ([rec("a", "passed"), rec("b", "failed")], (verdict.KILLED, ["b"])),
    ([rec("a", "passed"), rec("b", "error")], (verdict.KILLED, ["b"])),
    ([rec("a", "passed", faults=["WARNING abc123"])], (verdict.KILLED, ["a"])),
    ([rec("a", "known", known="x: y")], (verdict.KILLED, ["a"])),
    ([rec("a", "flaky"), rec("b", "passed")], (verdict.SURVIVED, [])),
    ([rec("a", "error")], (verdict.KILLED, ["a"])),           # e.g. the link never came up
    ([rec("a", "error", message="debian-6.12 did not reach the agent: qemu exited")],
     (verdict.INVALID, [])),
    ([rec("a", "error", message="--tipc-ko /c/tipc.ko did not load: insmod: ERROR: "
          "could not insert module")], (verdict.INVALID, [])),
    ([rec("a", "error", message="RuntimeError: bpftool prog loadall /c/toa.bpf.o "
          "/sys/fs/bpf/x/progs pinmaps /m exited 255: libbpf: prog 'toa_sockops': BPF "
          "program load failed: Permission denied")], (verdict.INVALID, [])),
    ([rec("a", "skipped")], (verdict.INVALID, [])),
    ([], (verdict.INVALID, [])),
])
def test_verdicts(tests: list[dict], want: tuple) -> None:
    assert verdict.classify(tests) == want


def test_only_tests_passing_on_the_base_judge_a_mutant() -> None:
    base = [rec("a", "passed"), rec("b", "failed"), rec("c", "skipped"), rec("d", "flaky")]
    assert verdict.passing(base) == ["a", "d"]


# -- the store and resuming -------------------------------------------------------------

def test_the_store_survives_a_restart_and_keys_on_base_and_selection(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    sel = store.selection_key("debian-6.12", ["suites/toa"])
    k = store.key("m1", "d1", "base1", sel)
    store.Store(path).put(k, {"id": "m1", "verdict": "killed", "finished": 1.0})
    again = store.Store(path)
    assert again.get(k)["verdict"] == "killed"
    assert again.get(store.key("m1", "d1", "base2", sel)) is None          # new base tree
    other = store.selection_key("debian-6.12", ["suites/toa", "-k", "x"])
    assert again.get(store.key("m1", "d1", "base1", other)) is None        # new selection


def test_a_rerun_skips_a_mutant_with_a_verdict_without_building(tmp_path: Path) -> None:
    """The engine finds the verdict in the store before it touches the kernel or a build
    (the kernel name is not even resolvable here)."""
    [m] = [m for m in catalog.load(suite="toa") if m.id == "toa-kmod-port-host-order"]
    eng = engine.Engine("no-such-kernel", tmp_path, log=lambda s: None)
    args, sel = engine._selection("toa", "kmod", "no-such-kernel", None, False)
    k = store.key(m.id, m.digest, engine._base_hash("toa", "kmod", [m]), sel)
    eng.store.put(k, {"id": m.id, "suite": "toa", "verdict": "killed", "finished": 2.0})
    entry, ran = eng.mutant(m, {"cells": {}}, 1, 1)
    assert (entry["verdict"], ran) == ("killed", False)


# -- the report and the command ---------------------------------------------------------

def test_summary_and_pages(tmp_path: Path) -> None:
    entries = [
        {"id": "t1", "suite": "toa", "verdict": "killed", "killers": ["x::a"],
         "cells": {"x::a": "failed", "x::b": "passed"}, "build_s": 3.0, "run_s": 40.0},
        {"id": "t2", "suite": "toa", "verdict": "survived", "killers": [],
         "cells": {"x::a": "passed"}},
        {"id": "p1", "suite": "tipc", "verdict": "invalid", "killers": [], "cells": {},
         "reason": "build failed"},
    ]
    s = report.summary(entries)
    assert (s["killed"], s["survived"], s["invalid"]) == (1, 1, 1)
    assert s["by_suite"]["toa"]["kill_rate"] == 0.5
    assert s["by_suite"]["tipc"]["kill_rate"] is None
    js, page = report.write(entries, [], tmp_path)
    assert json.loads(js.read_text())["tests"] == ["x::a", "x::b"]
    assert "KILL" in page.read_text() and "SURVIVED" in page.read_text()


def test_knit_mutate_list_json(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["mutate", "--list", "--json"]) == 0
    d = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert all(d["by_suite"][s] >= 8 for s in catalog.SUITES), d["by_suite"]
    assert {"id", "suite", "target", "description", "variant"} <= set(d["mutants"][0])


def test_mptcp_mutants_need_nightly(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["mutate", "--suite", "mptcp"]) == 2
    assert "add --nightly" in capsys.readouterr().err


def test_a_survivor_is_judged_again_once_its_suite_changed(tmp_path: Path) -> None:
    """A kill stands when the tests change; a survival does not (a sharpened test gets its
    chance). Judging again starts with the build, which needs the kernel: here an
    unknown one, so the mutant comes out invalid, naming it."""
    ms = {m.id: m for m in catalog.load(suite="toa")}
    eng = engine.Engine("no-such-kernel", tmp_path, log=lambda s: None)
    _, sel = engine._selection("toa", "kmod", "no-such-kernel", None, False)
    for ident, v in (("toa-kmod-port-host-order", "killed"),
                     ("toa-kmod-ipv4-host-order", "survived")):
        m = ms[ident]
        k = store.key(m.id, m.digest, engine._base_hash("toa", "kmod", [m]), sel)
        eng.store.put(k, {"id": m.id, "suite": "toa", "verdict": v, "tests_hash": "old"})
    killed, ran = eng.mutant(ms["toa-kmod-port-host-order"], {"cells": {}}, 1, 2)
    assert (killed["verdict"], ran) == ("killed", False)
    again, ran = eng.mutant(ms["toa-kmod-ipv4-host-order"], {"cells": {}}, 2, 2)
    assert (again["verdict"], ran) == ("invalid", True)
    assert "no-such-kernel" in again["reason"]


# -- MPTCP: the upstream selftest items each mutant names -------------------------------

MPTCP_GOOD = dict(suite="mptcp", target="net/mptcp/pm.c", description="d", pattern="a",
                  replacement="b")


def test_every_mptcp_mutant_names_the_upstream_items_that_match_it() -> None:
    from knit.selftests import MPTCP_JOIN_GROUPS

    ms = catalog.load(suite="mptcp")
    assert all(m.upstream for m in ms), [m.id for m in ms if not m.upstream]
    groups = {i.removeprefix("mptcp_join-") for m in ms for i in m.upstream}
    assert groups - {"pm_netlink", "mptcp_connect"} <= set(MPTCP_JOIN_GROUPS.values())
    assert catalog.load(suite="mptcp")[0].to_dict()["upstream"] == list(ms[0].upstream)


@pytest.mark.parametrize("suite, upstream, message", [
    ("toa", ["mptcp_join-add"], "for mptcp mutants only"),
    ("mptcp", "mptcp_join-add", "non-empty list of strings"),
    ("mptcp", [], "non-empty list of strings"),
    ("mptcp", ["mptcp_join-nosuchgroup"], "neither mptcp_join-<group>"),
    ("mptcp", ["mptcp_join.sh"], "neither mptcp_join-<group>"),
])
def test_a_wrong_upstream_list_is_refused(tmp_path: Path, suite: str, upstream: object,
                                          message: str) -> None:
    fields = {**(GOOD if suite == "toa" else MPTCP_GOOD), "upstream": upstream}
    write(tmp_path, suite, "bad", fields)
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(")):
        catalog.load(tmp_path)


def test_upstream_items_are_selected_exactly(tmp_path: Path) -> None:
    """-k "<item>-": mptcp_join-add is not mptcp_join-add_addr_ports (ids end -<kernel>)."""
    write(tmp_path, "mptcp", "ok", {**MPTCP_GOOD, "upstream": ["mptcp_join-add", "pm_netlink"]})
    [m] = catalog.load(tmp_path)
    args = run.upstream_selection(list(m.upstream))
    assert args[:2] == [run.UPSTREAM, "--nightly"]
    expr = args[args.index("-k") + 1]
    assert expr == "mptcp_join-add- or pm_netlink-"
    ids = ["mptcp_join-add-debian-6.12", "mptcp_join-add_addr_ports-debian-6.12",
           "pm_netlink-path:/o", "mptcp_connect-debian-6.12"]
    words = expr.split(" or ")
    assert [i for i in ids if any(w in i for w in words)] == ids[::2]


UP = "suites/upstream/test_mptcp_selftests.py::test_selftest"


@pytest.mark.parametrize("knit_v, up_v, want", [
    ("survived", "killed", "killed"),
    ("killed", "survived", "killed"),
    ("survived", "survived", "survived"),
    ("survived", "invalid", "survived"),
    ("invalid", "killed", "invalid"),
])
def test_either_judge_kills_and_both_verdicts_are_kept(knit_v: str, up_v: str,
                                                       want: str) -> None:
    knit = {"id": "m", "suite": "mptcp", "verdict": knit_v, "cells": {"k::a": "passed"},
            "killers": []}
    up = {"verdict": up_v, "items": ["pm_netlink"], "cells": {f"{UP}[pm_netlink-x]": "failed"},
          "killers": [f"{UP}[pm_netlink-x]"] if up_v == "killed" else []}
    e = engine.combine(knit, up)
    assert (e["verdict"], e["knit_verdict"], e["upstream"]["verdict"]) == (want, knit_v, up_v)
    assert set(e["cells"]) == {"k::a", f"{UP}[pm_netlink-x]"}
    assert engine.combine(knit, None) is knit


def test_the_summary_counts_knit_and_upstream_apart() -> None:
    def e(ident: str, knit_v: str, up_v: str) -> dict:
        return engine.combine({"id": ident, "suite": "mptcp", "verdict": knit_v,
                               "cells": {}, "killers": []},
                              {"verdict": up_v, "items": ["pm_netlink"], "cells": {},
                               "killers": []})
    s = report.summary([e("a", "killed", "survived"), e("b", "survived", "killed"),
                        e("c", "survived", "survived")])
    mp = s["by_suite"]["mptcp"]
    assert (mp["killed"], mp["survived"], mp["kill_rate"]) == (2, 1, 0.667)
    assert (mp["knit"]["killed"], mp["upstream"]["killed"], mp["killed_by_upstream"]) == (1, 1, 1)
    assert s["mutants"][1]["upstream"]["verdict"] == "killed"


def test_an_upstream_judgement_needs_an_item_that_passed_on_the_base(tmp_path: Path) -> None:
    """No upstream item passed unmutated: the upstream verdict is invalid, without a build
    (the kernel is not even resolvable here)."""
    [m] = [m for m in catalog.load(suite="mptcp") if m.id == "mptcp-limit-max-off-by-one"]
    eng = engine.Engine("no-such-kernel", tmp_path, log=lambda s: None)
    base = {"cells": {f"{UP}[pm_netlink-no-such-kernel]": "failed",
                      f"{UP}[mptcp_join-fastclose-no-such-kernel]": "passed"}}
    e, ran = eng.upstream_mutant(m, base, 1, 1)
    assert (e["verdict"], ran) == ("invalid", False)
    assert "none of pm_netlink passed" in e["reason"]


def test_an_mptcp_build_tree_names_its_source_for_the_selftests(tmp_path: Path) -> None:
    """knit.selftests.fetch reads build.json beside a built tree: the mutants' O= tree
    names the source package it was built from."""
    src = tmp_path / "ksrc" / "6.12.118-1" / "src"
    src.mkdir(parents=True)
    (src.parent / "complete").write_text("linux-source-6.12=6.12.118-1\n")
    out = tmp_path / "kbuild" / "out"
    build._selftests_source(out, src, tmp_path / "work")
    assert json.loads((out.parent / "build.json").read_text())["revision"] == \
        "linux-source-6.12=6.12.118-1"
