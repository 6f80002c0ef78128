"""The results store: one JSON file, rewritten atomically after every mutant, so an
interrupted `knit mutate` resumes where it stopped.

An entry's key is (mutant id, mutant digest, base tree hash, selection hash): a reworded
description keeps the verdict, a changed pattern, source or test selection redoes it.
The unmutated base of each (suite, variant) is stored the same way, as id "base".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

VERSION = 1


def selection_key(kernel: str, args: list[str]) -> str:
    """Identity of a test selection: the kernel name and the pytest arguments."""
    return hashlib.sha256(json.dumps([kernel, args]).encode()).hexdigest()[:12]


def key(mutant: str, digest: str, base: str, selection: str) -> str:
    return f"{mutant}@{digest}:{base}:{selection}"


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("version") == VERSION:
                self.entries = data.get("entries", {})

    def get(self, k: str) -> dict | None:
        return self.entries.get(k)

    def put(self, k: str, entry: dict) -> None:
        self.entries[k] = entry
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": VERSION, "entries": self.entries},
                                  indent=1) + "\n")
        tmp.replace(self.path)

    def latest(self) -> dict[str, dict]:
        """The newest entry of each mutant id (and base), whatever its key."""
        out: dict[str, dict] = {}
        for e in sorted(self.entries.values(), key=lambda e: e.get("finished", 0)):
            out[e["id"]] = e
        return out
