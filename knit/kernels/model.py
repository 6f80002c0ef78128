"""A resolved kernel, and pure helpers on versions and configs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Kernel:
    """A resolved kernel. `image` is what vng -r gets (a vmlinuz or a build tree).

    `release` is the Debian release the kernel was built for (bookworm, trixie): its
    modules are built in that release's root, whose compiler matches the kernel's. None
    for built trees and bzImages, whose modules build on the host."""

    name: str
    version: str
    image: Path
    headers: Path | None = None
    config_path: Path | None = None
    config: dict[str, str] = field(default_factory=dict, repr=False)
    release: str | None = None
    modules: Path | None = None   # lib/modules/<version> on the host, if any

    @property
    def short(self) -> str:
        return self.name

    def load_config(self) -> None:
        if self.config_path and self.config_path.exists():
            self.config = parse_config(self.config_path.read_text())


def parse_config(text: str) -> dict[str, str]:
    """CONFIG_X=y|m|"str" lines of a kernel .config; '# CONFIG_X is not set' is absent."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
    return out


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))
