"""Source-built kernels: vng's kconfig plus knit's config fragments, then vng's build, into
an O= directory cached by (tree revision, merged config hash).

    $KNIT_CACHE/kbuild/<name>/<revision>-<config>/out/         the O= tree vng -r boots
    $KNIT_CACHE/kbuild/<name>/<revision>-<config>/build.json   written last
    $KNIT_CACHE/kbuild/<name>/current                          the key of the last build

Debian sources come from ksource (never built in place); a git tree given with --tree is
built out of tree too, so its checkout stays clean for `git bisect`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from knit.errors import KernelError
from knit.kernels import source as ksource
from knit.kernels.cache import KERNELS_TOML, cache_dir, locked
from knit.kernels.image import check_image, image_version
from knit.kernels.model import parse_config

CONFIGS = KERNELS_TOML.parent / "configs"
DEFAULT_CONFIGS = ["base", "net", "mptcp", "tipc", "bpf"]
PROGRESS_EVERY_S = 30
# kbuild's one-line step summaries: "  CC      net/mptcp/protocol.o"
STEP = re.compile(r"^\s+(CC|AS|LD|AR|BTF|OBJCOPY|GEN|HOSTCC)\s+(\S+)")


@dataclass(frozen=True)
class Source:
    tree: Path
    revision: str      # "linux-source-6.12=6.12.117-1~deb12u1" or a git sha (+ "-dirty-<hash>")


@dataclass(frozen=True)
class Result:
    out: Path
    seconds: float
    cached: bool
    dropped: list[str]
    version: str


Log = Callable[[str], None]


def _stderr(m: str) -> None:
    print(m, file=sys.stderr)


def fragments(names: list[str]) -> list[Path]:
    paths = [CONFIGS / f"{n}.config" for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise KernelError(f"config fragment(s) not found: {', '.join(missing)}")
    return paths


def git_revision(tree: Path) -> str:
    """HEAD's sha, plus a hash of the diff when the work tree is dirty."""
    def git(*a: str) -> str:
        p = subprocess.run(["git", "-C", str(tree), *a], capture_output=True, text=True)
        if p.returncode:
            raise KernelError(f"{tree} is not a git kernel tree ({p.stderr.strip()}): "
                              "give --tree a git checkout")
        return p.stdout
    sha = git("rev-parse", "HEAD").strip()
    diff = git("diff", "HEAD")
    return sha + (f"-dirty-{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else "")


def source(spec: dict, tree: Path | None, log: Log = _stderr) -> Source:
    if tree is not None:
        tree = tree.expanduser().resolve()
        if not (tree / "Kconfig").exists():
            raise KernelError(f"{tree} is not a kernel source tree (no Kconfig)")
        return Source(tree, git_revision(tree))
    pkg = spec.get("source_package")
    if not pkg:
        raise KernelError("no tree to build: give --tree, or a source_package in kernels.toml")
    version = ksource.candidate(pkg)
    return Source(ksource.tree(pkg, version, log), f"{pkg}={version}")


def config_hash(frags: list[Path]) -> str:
    h = hashlib.sha256()
    for f in frags:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def build_dir(name: str, src: Source, frags: list[Path]) -> Path:
    rev = hashlib.sha256(src.revision.encode()).hexdigest()[:12]
    return cache_dir() / "kbuild" / name / f"{rev}-{config_hash(frags)[:12]}"


def wanted(frags: list[Path]) -> dict[str, str]:
    """CONFIG_X -> value the fragments ask for; 'n' for '# CONFIG_X is not set'."""
    out: dict[str, str] = {}
    for f in frags:
        for line in f.read_text().splitlines():
            if m := re.match(r"^(CONFIG_\w+)=(.*)$", line.strip()):
                out[m.group(1)] = m.group(2).strip('"')
            elif m := re.match(r"^# (CONFIG_\w+) is not set", line.strip()):
                out[m.group(1)] = "n"
    return out


def dropped(frags: list[Path], final: dict[str, str]) -> list[str]:
    """Fragment options the final .config did not keep, as 'CONFIG_X=y (got m)'."""
    out = []
    for opt, want in wanted(frags).items():
        got = final.get(opt, "n")
        if got != want:
            out.append(f"{opt}={want} (got {'not set' if got == 'n' else got})")
    return out


def _vng(args: list[str], cwd: Path, log: Log, what: str, keep: Path) -> float:
    """Run vng in `cwd`, its whole output into `keep`, kbuild's progress logged every
    PROGRESS_EVERY_S; returns its seconds."""
    venv = Path(sys.executable).parent  # vng runs virtme-configkernel from PATH
    argv = [str(venv / "vng"), "--verbose", *args]
    env = {**os.environ, "PATH": f"{venv}:{os.environ.get('PATH', '')}"}
    t0 = last = time.monotonic()
    steps = 0
    with open(keep, "w") as f, subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", env=env) as p:
        assert p.stdout is not None
        for line in p.stdout:
            f.write(line)
            if m := STEP.match(line):
                steps += 1
                if time.monotonic() - last >= PROGRESS_EVERY_S:
                    last = time.monotonic()
                    log(f"{what}: {last - t0:5.0f}s, {steps} steps, at "
                        f"{m.group(2).rsplit('/out/', 1)[-1]}")
        rc = p.wait()
    if rc != 0:
        raise KernelError(f"{what} failed (exit {rc}); whole log {keep}\n{why(keep)}")
    return time.monotonic() - t0


def why(log_path: Path, most: int = 25) -> str:
    """The lines of a build log that say what failed (with -j, not its tail)."""
    lines = log_path.read_text(errors="replace").splitlines()
    hits = [ln for ln in lines if re.search(r"\berror\b|\*\*\*|undefined reference", ln, re.I)]
    return "\n".join(hits[:most] or lines[-most:])


def build(name: str, spec: dict, tree: Path | None = None, jobs: int = 0,
          force: bool = False, log: Log = _stderr) -> Result:
    """Configure and build kernel `name` (cached); return where vng can boot it."""
    frags = fragments(spec.get("configs", DEFAULT_CONFIGS))
    src = source(spec, tree, log)
    d = build_dir(name, src, frags)
    meta = d / "build.json"
    with locked(d.parent / f".{d.name}.lock"):
        if meta.exists() and not force:
            m = json.loads(meta.read_text())
            _point(d)
            log(f"{name}: cached build of {src.revision} in {d} (built in {m['seconds']}s)")
            return Result(d / "out", m["seconds"], True, m["dropped"], m["version"])
        if force:
            shutil.rmtree(d, ignore_errors=True)
        # Without build.json an earlier build failed or was stopped: kbuild resumes it.
        r = build_in(src.tree, d / "out", frags, jobs=jobs, log=log, label=name)
        meta.write_text(json.dumps({
            "name": name, "revision": src.revision, "tree": str(src.tree),
            "configs": [f.name for f in frags], "config_sha256": config_hash(frags),
            "dropped": r.dropped, "version": r.version, "seconds": r.seconds,
            "jobs": jobs or None, "date": time.strftime("%FT%TZ", time.gmtime())},
            indent=1) + "\n")
        _point(d)
    return r


def build_in(tree: Path, out: Path, frags: list[Path], jobs: int = 0, log: Log = _stderr,
             label: str = "kernel") -> Result:
    """vng kconfig with `frags`, then vng build, of `tree` into `out` (no cache: an
    existing `out` is built incrementally)."""
    if shutil.which("pahole") is None and "CONFIG_DEBUG_INFO_BTF" in wanted(frags):
        raise KernelError("BTF needs pahole on the build host: apt-get install dwarves")
    out.mkdir(parents=True, exist_ok=True)
    log(f"{label}: configuring {tree} with {', '.join(f.stem for f in frags)}")
    cfg_s = _vng(["--kconfig", "--force", *[a for f in frags for a in ("--config", str(f))],
                  f"O={out}"], tree, log, f"{label} kconfig", out / "knit-kconfig.log")
    lost = dropped(frags, parse_config((out / ".config").read_text()))
    for opt in lost:
        log(f"{label}: fragment option not kept by kconfig: {opt}")
    log(f"{label}: building with {jobs or 'all'} jobs in {out}")
    make_s = _vng(["--build", *(["--jobs", str(jobs)] if jobs else []), f"O={out}"],
                  tree, log, f"{label} build", out / "knit-build.log")
    bz = out / "arch" / "x86" / "boot" / "bzImage"
    check_image(bz)
    version = image_version(bz)
    seconds = round(cfg_s + make_s, 1)
    log(f"{label}: {version} built in {seconds:.0f}s ({cfg_s:.0f}s kconfig)")
    return Result(out, seconds, False, lost, version)


def _point(d: Path) -> None:
    (d.parent / "current").write_text(d.name + "\n")


def current(name: str) -> Path | None:
    """The O= tree of the last build of `name`, if any."""
    ptr = cache_dir() / "kbuild" / name / "current"
    if not ptr.exists():
        return None
    d = ptr.parent / ptr.read_text().strip()
    return d / "out" if (d / "build.json").exists() else None
