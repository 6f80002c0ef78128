"""The mutant catalogue: kernels/mutants/<suite>/<id>.toml, one deliberately broken
variant of a source file per file.

    suite       = "toa" | "tipc" | "mptcp"
    target      = "kmod/toa/toa.c"       (toa: relative to the checkout; tipc and mptcp:
                                          relative to the kernel source tree)
    description = "the plausible bug it models, one line"
    pattern     = "exact source text"     (must occur exactly once in the target)
    replacement = "what it becomes"
    equivalent  = "why no test can see it"  (optional: a survivor judged equivalent)
    upstream    = ["mptcp_join-fastclose", "pm_netlink"]
                  (mptcp only, optional: the upstream net/mptcp selftest items that
                   exercise the code the mutant breaks: an mptcp_join group as
                   mptcp_join-<group>, or a script's stem; each mutant is judged by
                   them too, apart from knit's own suite)

The id is the file's stem. Loading validates every field; `apply_text` checks the
pattern against the real source at the moment it is applied.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from knit.errors import KnitError
from knit.paths import ROOT

CATALOGUE = ROOT / "kernels" / "mutants"
SUITES = ("toa", "tipc", "mptcp")
REQUIRED = ("suite", "target", "description", "pattern", "replacement")
OPTIONAL = ("equivalent", "upstream")
# An upstream item: a group of mptcp_join.sh, or another script of net/mptcp by its stem.
UPSTREAM_ITEM = re.compile(r"^(mptcp_join-(?P<group>\w+)|(?!mptcp_join)[a-z0-9_]+)$")
# Which source tree a target lives in: the TOA's own sources, or the kernel's.
TARGET_ROOTS = {"toa": ("kmod/toa/", "bpf/toa/"), "tipc": ("net/tipc/",),
                "mptcp": ("net/mptcp/",)}


class CatalogueError(KnitError):
    """A mutant file is malformed, or its pattern does not apply exactly once."""


@dataclass(frozen=True)
class Mutant:
    id: str
    suite: str
    target: str
    description: str
    pattern: str
    replacement: str
    equivalent: str = ""
    upstream: tuple[str, ...] = ()
    file: str = ""

    @property
    def variant(self) -> str:
        """What the mutant is built as: kmod or bpf (toa), module (tipc), kernel (mptcp)."""
        if self.suite == "toa":
            return "bpf" if self.target.startswith("bpf/") else "kmod"
        return "module" if self.suite == "tipc" else "kernel"

    @property
    def digest(self) -> str:
        """Identity of the change itself: a reworded description keeps it."""
        body = json.dumps([self.target, self.pattern, self.replacement])
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {**asdict(self), "upstream": list(self.upstream), "variant": self.variant,
                "digest": self.digest}


def _upstream(path: Path, suite: str, value: object) -> tuple[str, ...]:
    """The `upstream` list, checked: mptcp only, known mptcp_join groups or script stems."""
    from knit.selftests import MPTCP_JOIN_GROUPS

    if value is None:
        return ()
    if suite != "mptcp":
        raise CatalogueError(f"{path}: upstream selftests are for mptcp mutants only: "
                             "remove the upstream key")
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, str) for v in value):
        raise CatalogueError(f"{path}: upstream must be a non-empty list of strings such as "
                             '["mptcp_join-fastclose", "pm_netlink"]')
    for item in value:
        m = UPSTREAM_ITEM.match(item)
        if m is None or (m["group"] and m["group"] not in MPTCP_JOIN_GROUPS.values()):
            raise CatalogueError(f"{path}: upstream item {item!r} is neither mptcp_join-<group> "
                                 f"({', '.join(sorted(MPTCP_JOIN_GROUPS.values()))}) nor a "
                                 "script stem such as pm_netlink")
    return tuple(dict.fromkeys(value))


def parse(path: Path) -> Mutant:
    """One mutant file, validated (not yet against its source)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CatalogueError(f"{path}: not readable TOML ({e}): fix the file") from e
    missing = [k for k in REQUIRED if not isinstance(data.get(k), str)]
    if missing:
        raise CatalogueError(f"{path}: missing or non-string {', '.join(missing)}: every "
                             f"mutant needs {', '.join(REQUIRED)}")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise CatalogueError(f"{path}: unknown key(s) {', '.join(unknown)}: allowed are "
                             f"{', '.join(REQUIRED + OPTIONAL)}")
    suite, target = data["suite"], data["target"]
    if suite not in SUITES:
        raise CatalogueError(f"{path}: suite {suite!r} is not one of {', '.join(SUITES)}")
    if not target.startswith(TARGET_ROOTS[suite]) or ".." in Path(target).parts:
        raise CatalogueError(f"{path}: target {target!r} must lie under "
                             f"{' or '.join(TARGET_ROOTS[suite])} for suite {suite}")
    if not data["pattern"]:
        raise CatalogueError(f"{path}: empty pattern: give the exact source text to replace")
    if data["pattern"] == data["replacement"]:
        raise CatalogueError(f"{path}: replacement equals pattern: the mutant changes nothing")
    if "\n" in data["description"].strip():
        raise CatalogueError(f"{path}: the description must be one line")
    return Mutant(id=path.stem, file=str(path), **{k: data[k] for k in REQUIRED},
                  equivalent=data.get("equivalent", ""),
                  upstream=_upstream(path, suite, data.get("upstream")))


def load(root: Path = CATALOGUE, suite: str | None = None) -> list[Mutant]:
    """Every mutant under `root` (optionally one suite's), sorted by suite and id."""
    if not root.is_dir():
        raise CatalogueError(f"no mutant catalogue at {root}: create kernels/mutants/<suite>/")
    mutants = [parse(p) for p in sorted(root.glob("*/*.toml"))]
    for m in mutants:
        if Path(m.file).parent.name != m.suite:
            raise CatalogueError(f"{m.file}: suite {m.suite!r} but filed under "
                                 f"{Path(m.file).parent.name}/: move it to {m.suite}/")
    seen: dict[str, str] = {}
    for m in mutants:
        if m.id in seen:
            raise CatalogueError(f"mutant id {m.id} twice ({seen[m.id]}, {m.file}): rename one")
        seen[m.id] = m.file
    if suite is not None:
        mutants = [m for m in mutants if m.suite == suite]
    return sorted(mutants, key=lambda m: (SUITES.index(m.suite), m.id))


def apply_text(text: str, m: Mutant) -> str:
    """`text` with the mutant's pattern replaced; the pattern must occur exactly once, so
    a changed upstream source fails loudly instead of mutating the wrong line."""
    n = text.count(m.pattern)
    if n != 1:
        raise CatalogueError(f"{m.id}: pattern occurs {n} times in {m.target}, not once: "
                             f"update {m.file} to the source it is applied to")
    return text.replace(m.pattern, m.replacement)
