"""Run a host command inside a knit root tree (a guest userspace): the wheels' byte-compile
when a tree is built, module builds that need the kernel's own compiler, bcc's compile
probe with the guest's bcc.

With host paths to bind, the command runs in a private mount namespace (`unshare
--mount`): the paths are bind-mounted into the tree at the same paths, so absolute paths
mean the same inside and out, and nothing stays mounted on the host afterwards.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from knit.errors import KnitError

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ChrootError(KnitError):
    pass


def chroot_argv(root: Path, argv: Sequence[str], cwd: Path | None = None,
                env: Mapping[str, str] | None = None) -> list[str]:
    """chroot into `root` with a clean environment, in `cwd`."""
    envs = [f"{k}={v}" for k, v in {"PATH": PATH, "LC_ALL": "C", "HOME": "/root",
                                     **(env or {})}.items()]
    cd = ["-C", str(cwd)] if cwd else []
    return ["chroot", str(root), "/usr/bin/env", "-i", *cd, *envs, *argv]


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
    lines.append("exec " + shlex.join(chroot_argv(root, argv, cwd, env)))
    return "\n".join(lines)


def run(root: Path, argv: Sequence[str], ro: Sequence[Path] = (), rw: Sequence[Path] = (),
        cwd: Path | None = None, env: Mapping[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """Run argv in `root` with host paths `ro` (read-only) and `rw` bound in; returns the
    completed process (stdout and stderr merged into stdout)."""
    if not (root / "usr" / "bin" / "env").exists():
        raise ChrootError(f"{root} is not a root tree: run 'knit rootfs build'")
    if not ro and not rw:   # nothing to bind: a plain chroot, which works inside one too
        outer = chroot_argv(root, argv, cwd, env)
    elif not os.path.ismount("/"):
        raise ChrootError("knit runs in a chroot here: / is no mount point, so binds into "
                          "a root tree cannot be kept private; run knit on the host")
    else:
        outer = ["unshare", "--mount", "--", "sh", "-c", script(root, argv, ro, rw, cwd, env)]
    try:
        return subprocess.run(outer, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              timeout=timeout)
    except FileNotFoundError as e:
        raise ChrootError(f"{outer[0]} not found: apt-get install util-linux coreutils") from e
