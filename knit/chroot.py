"""Run a host command inside a knit root tree (a guest userspace): module builds with the
kernel's own compiler, bcc's compile probe with the guest's bcc.

The command runs in a private mount namespace (`unshare --mount`): the host paths it needs
are bind-mounted into the tree at the same paths, so absolute paths mean the same inside
and out, and nothing stays mounted on the host afterwards.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from knit.errors import KnitError

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ChrootError(KnitError):
    pass


def script(root: Path, argv: Sequence[str], ro: Sequence[Path] = (), rw: Sequence[Path] = (),
           cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """The sh script that unshare runs: mounts, then exec chroot."""
    q = shlex.quote
    lines = ["set -e", "mount --make-rprivate /"]
    for p in (*ro, *rw):
        target = root / str(p).lstrip("/")
        lines.append(f"mkdir -p {q(str(target))}")
        lines.append(f"mount --rbind {q(str(p))} {q(str(target))}")
        if p in ro:
            lines.append(f"mount -o remount,bind,ro {q(str(target))}")
    lines.append(f"mount -t proc proc {q(str(root / 'proc'))}")
    envs = [f"{k}={v}" for k, v in {"PATH": PATH, "LC_ALL": "C", "HOME": "/root",
                                     **(env or {})}.items()]
    cd = ["-C", str(cwd)] if cwd else []
    lines.append("exec " + shlex.join(["chroot", str(root), "/usr/bin/env", "-i", *cd, *envs,
                                       *argv]))
    return "\n".join(lines)


def run(root: Path, argv: Sequence[str], ro: Sequence[Path] = (), rw: Sequence[Path] = (),
        cwd: Path | None = None, env: Mapping[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """Run argv in `root` with host paths `ro` (read-only) and `rw` bound in; returns the
    completed process (stdout and stderr merged into stdout)."""
    if not (root / "usr" / "bin" / "env").exists():
        raise ChrootError(f"{root} is not a root tree: run 'knit rootfs build'")
    sh = script(root, argv, ro, rw, cwd, env)
    try:
        return subprocess.run(["unshare", "--mount", "--", "sh", "-c", sh],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              timeout=timeout)
    except FileNotFoundError as e:
        raise ChrootError("unshare not found: apt-get install util-linux") from e
