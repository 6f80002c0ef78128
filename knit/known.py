"""Known kernel issues (kernels/known-issues.toml): which failures they explain.

Pure: the pytest plugin asks `match` about each failed report; the file's own comments
describe its format.
"""

from __future__ import annotations

import fnmatch
import operator
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from knit.errors import KnitError

KNOWN_ISSUES_TOML = Path(__file__).resolve().parent.parent / "kernels" / "known-issues.toml"
KEYS = {"id", "reference", "fingerprint", "signature", "kernels", "versions"}
BOUND_RX = re.compile(r"^\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+)*)\s*$")
COMPARE = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt,
           "<": operator.lt}


@dataclass(frozen=True)
class Issue:
    id: str
    reference: str                      # upstream report, fix commit, or a text
    fingerprints: tuple[str, ...] = ()  # knit.health.Fault.fingerprint values
    signature: str = ""                 # regex searched in the failure text
    kernels: tuple[str, ...] = ()       # kernel name globs; none: every kernel
    versions: tuple[str, ...] = ()      # version ranges (">=6.12, <6.12.120"); none: any

    def affects(self, kernel: str | None, version: str | None) -> bool:
        if self.kernels and not any(fnmatch.fnmatchcase(kernel or "", g) for g in self.kernels):
            return False
        return not self.versions or any(in_range(version or "", r) for r in self.versions)

    def explains(self, text: str, fingerprints: Iterable[str]) -> bool:
        """Whether a failure with this text and these fault fingerprints is this issue."""
        if set(self.fingerprints) & set(fingerprints):
            return True
        return bool(self.signature) and re.search(self.signature, text) is not None

    def __str__(self) -> str:
        return f"{self.id}: {self.reference}"


def numbers(version: str) -> tuple[int, ...]:
    """'6.12.117+deb12-amd64' -> (6, 12, 117): uname -r's leading release numbers."""
    m = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(x) for x in m.group().split(".")) if m else ()


def in_range(version: str, spec: str) -> bool:
    """Whether `version` meets every bound of `spec` (">=6.12, <6.12.120"). A bound compares
    as many numbers as it has: "<=6.12" takes in every 6.12.y."""
    have = numbers(version)
    if not have:
        return False
    for bound in spec.split(","):
        op, want = _bound(bound, spec)
        if not COMPARE[op](have[:len(want)], want):
            return False
    return True


def _bound(bound: str, spec: str) -> tuple[str, tuple[int, ...]]:
    m = BOUND_RX.match(bound)
    if not m:
        raise KnitError(f"known issues: bad version range {spec!r} (want e.g. '>=6.12, <6.13')")
    return m.group(1), numbers(m.group(2))


def _strings(entry: dict, key: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KnitError(f"known issues: {entry.get('id', '?')}: {key} must be a string or a "
                        "list of strings")
    return tuple(value)


def issue(entry: dict) -> Issue:
    """One [[issue]] table, checked: a typo must not silently match nothing."""
    name = entry.get("id", "?")
    unknown = set(entry) - KEYS
    if unknown:
        raise KnitError(f"known issues: {name}: unknown key(s) {', '.join(sorted(unknown))}")
    if not entry.get("id") or not entry.get("reference"):
        raise KnitError(f"known issues: {name}: every issue needs an id and a reference")
    it = Issue(id=str(entry["id"]), reference=str(entry["reference"]),
               fingerprints=_strings(entry, "fingerprint"),
               signature=str(entry.get("signature", "")), kernels=_strings(entry, "kernels"),
               versions=_strings(entry, "versions"))
    if not it.fingerprints and not it.signature:
        raise KnitError(f"known issues: {name}: give a fingerprint or a signature")
    try:
        re.compile(it.signature)
    except re.error as e:
        raise KnitError(f"known issues: {name}: bad signature regex: {e}") from None
    for r in it.versions:
        for bound in r.split(","):
            _bound(bound, r)
    return it


def load(path: Path = KNOWN_ISSUES_TOML) -> list[Issue]:
    """The issues of a known-issues file; a missing file has none."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise KnitError(f"known issues: {path}: {e}") from None
    entries = data.get("issue", [])
    if not isinstance(entries, list):
        raise KnitError(f"known issues: {path}: write each issue as an [[issue]] table")
    return [issue(e) for e in entries]


def match(issues: Iterable[Issue], kernel: str | None, version: str | None, text: str,
          fingerprints: Iterable[str] = ()) -> Issue | None:
    """The first issue that affects this kernel and explains this failure."""
    prints = list(fingerprints)
    return next((i for i in issues if i.affects(kernel, version) and i.explains(text, prints)),
                None)
