"""Out-of-tree builds on the host: kernel modules against a guest kernel's headers, and
BPF objects with clang. Results are cached by (source hash, kernel version) under
$KNIT_CACHE, which the guest sees at the same path, so `insmod <host path>` works there.

Concurrent pytest-xdist workers share the cache: one build per key holds an flock, the
others wait for it and then reuse the result.

Debian's extracted header packages need two fix-ups (kmod/toa/README.md):
  * `<headers>/Makefile` is `include /usr/src/linux-headers-<v>-common/Makefile`, an
    absolute path that does not exist on the host: pass that Makefile with `-f` from the
    extracted tree instead (kbuild takes srctree from the Makefile's own location).
  * 6.12's headers ship a BTF vmlinux, so modpost runs pahole for module BTF. Without
    pahole on the host, `CONFIG_DEBUG_INFO_BTF_MODULES=` skips that step.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from knit import kernels, rootfs
from knit.errors import CmdFailed, KnitError
from knit.kernels import Kernel, locked
from knit.vm import VM

# Build products that kbuild leaves in M=; they are not part of a source's identity.
BUILD_PRODUCTS = re.compile(
    r"(\.o|\.ko|\.mod|\.mod\.c|\.mod\.o|\.cmd|\.symvers|\.order|\.tmp|~|\.swp)$|"
    r"^\.tmp_versions$|^\.cache\.mk$|^__pycache__$|^\.git$")
LOG_TAIL = 120  # lines of compiler output shown in a build error


class BuildError(KnitError):
    """A module or BPF build failed; the message carries the command and compiler output."""


@dataclass(frozen=True)
class Built:
    """A cached build result."""

    path: Path            # the .ko or .o
    name: str             # module name (file stem) or object name
    key: str              # cache directory name
    seconds: float        # how long the build took when it ran (a cache hit keeps it)
    cached: bool          # True if this call reused an earlier build
    log: str              # compiler output of the build


# -- shared: hashing and the locked cache -------------------------------------------------

def _source_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not BUILD_PRODUCTS.search(d))
        files += [Path(root) / n for n in sorted(names) if not BUILD_PRODUCTS.search(n)]
    return files


def source_hash(src: Path) -> str:
    """sha256 over the relative names and contents of a source file or tree."""
    h = hashlib.sha256()
    base = src.parent if src.is_file() else src
    for f in _source_files(src):
        h.update(str(f.relative_to(base)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


def _cached(out: Path, key: str) -> Built | None:
    meta = out / "build.json"
    if not meta.exists():
        return None
    m = json.loads(meta.read_text())
    return Built(path=out / m["file"], name=m["name"], key=key, seconds=m["seconds"],
                 cached=True, log=m.get("log", ""))


def _tail(text: str, n: int = LOG_TAIL) -> str:
    lines = text.rstrip().splitlines()
    cut = f"[... {len(lines) - n} earlier lines ...]\n" if len(lines) > n else ""
    return cut + "\n".join(lines[-n:])


def kernel_cc(headers: Path) -> str | None:
    """The compiler Debian's headers build modules with (their .kernelvariables), e.g.
    x86_64-linux-gnu-gcc-14; None when the headers do not say."""
    kv = headers / ".kernelvariables"
    text = kv.read_text() if kv.exists() else ""
    cc = re.search(r"^CC\s*=.*?\)?\s*\$\(CROSS_COMPILE\)(\S+)\s*$", text, re.M)
    cross = re.search(r"^(?:override\s+)?CROSS_COMPILE\s*=\s*(\S+)", text, re.M)
    if not cc:
        return None
    return (cross.group(1) if cross else "x86_64-linux-gnu-") + cc.group(1)


def build_root(kernel: Kernel) -> rootfs.Userspace | None:
    """Where `kernel`'s modules build: on the host when it has the compiler the kernel was
    built with, else in the root tree of the kernel's Debian release, which has it (Debian
    13's kernels want gcc-14, which Debian 12 lacks). Built trees build on the host."""
    if kernel.release not in rootfs.RELEASES or kernel.headers is None:
        return None
    cc = kernel_cc(kernel.headers)
    if cc is None or shutil.which(cc):
        return None
    return rootfs.get(kernel.release)


def _run(argv: list[str], cwd: Path | None, what: str, timeout: float,
         root: rootfs.Userspace | None = None, binds: tuple[Path, ...] = ()
         ) -> tuple[str, float]:
    t0 = time.monotonic()
    try:
        if root is not None:
            p = root.run(argv, ro=binds, rw=(cwd,) if cwd else (), cwd=cwd, timeout=timeout)
        else:
            p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=timeout,
                               env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError as e:
        raise BuildError(f"{what}: {argv[0]} not found on the host: install it "
                         "(and add its Debian package to bootstrap.sh)") from e
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{what}: timed out after {timeout:.0f}s: {' '.join(argv)}\n"
                         f"{_tail(e.stdout or '')}") from e
    if p.returncode != 0:
        raise BuildError(f"{what} failed (exit {p.returncode}): {' '.join(argv)}\n"
                         f"--- compiler output ---\n{_tail(p.stdout)}")
    return p.stdout, time.monotonic() - t0


# -- kernel modules -----------------------------------------------------------------------

def make_argv(headers: Path, build_dir: Path, target: str = "modules",
              jobs: int = 2, pahole: bool | None = None) -> list[str]:
    """The make command for an out-of-tree module against `headers` (Debian-extracted
    headers or a kernel build tree)."""
    argv = ["make", f"-j{jobs}", "-C", str(headers)]
    top = headers / "Makefile"
    text = top.read_text() if top.exists() else ""
    # Debian's headers Makefile is `include /usr/src/<dir>/Makefile`, after a
    # `KBUILD_OUTPUT=/usr/src/<arch dir>` line since 7.x; both name /usr/src, where the
    # extracted packages are not: use the extracted copies instead.
    m = re.search(r"^include\s+(/\S+/Makefile)\s*$", text, re.M)
    if m and not Path(m.group(1)).exists():
        common = headers.parent / Path(m.group(1)).parent.name / "Makefile"
        if not common.exists():
            raise BuildError(f"{top} includes {m.group(1)}, and {common} does not exist "
                             "either: the headers package is incomplete (knit kernels fetch)")
        argv += ["-f", str(common)]
        if re.search(r"^KBUILD_OUTPUT\s*:?=", text, re.M):
            argv += [f"KBUILD_OUTPUT={headers}"]
    argv += [f"M={build_dir}"]
    pahole = shutil.which("pahole") is not None if pahole is None else pahole
    if (headers / "vmlinux").exists() and not pahole:
        argv += ["CONFIG_DEBUG_INFO_BTF_MODULES="]  # no pahole: build without module BTF
    return argv + [target]


def build_module(src: Path, kernel: Kernel, name: str | None = None,
                 cache: Path | None = None, timeout: float = 600) -> Built:
    """Build the module source dir `src` for `kernel` (cached), and return its .ko.

    `name` picks one .ko when the source builds several; by default there must be one.
    """
    src = src.resolve()
    if not (src / "Makefile").exists() and not (src / "Kbuild").exists():
        raise BuildError(f"{src} is not a kbuild module source (no Makefile or Kbuild)")
    if kernel.headers is None or not kernel.headers.is_dir():
        raise BuildError(f"no headers for {kernel.name} ({kernel.version}): "
                         f"expected {kernel.headers}; run 'knit kernels fetch {kernel.name}'")
    key = f"{src.name}-{source_hash(src)[:16]}"
    base = (cache or kernels.cache_dir()) / "kmod" / kernel.version
    out = base / key
    with locked(base / f"{key}.lock"):
        hit = _cached(out, key)
        if hit is not None:
            return hit
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{key}-", dir=base) as tmp:
            work = Path(tmp) / src.name
            shutil.copytree(src, work, ignore=lambda d, names: [
                n for n in names if BUILD_PRODUCTS.search(n)])
            root = build_root(kernel)
            argv = make_argv(kernel.headers, work, pahole=True if root else None)
            where = f" in the {root.name} root" if root else ""
            log, seconds = _run(argv, work, f"building {src} for {kernel.version}{where}",
                                timeout, root=root, binds=(kernels.kernel_dir(kernel.version),))
            kos = sorted(work.rglob("*.ko"))
            if name is not None:
                kos = [k for k in kos if k.stem == name]
            if len(kos) != 1:
                found = ", ".join(k.name for k in sorted(work.rglob("*.ko"))) or "none"
                raise BuildError(f"building {src} for {kernel.version}: expected one module"
                                 f"{' named ' + name if name else ''}, got {found}\n"
                                 f"--- compiler output ---\n{_tail(log)}")
            vermagic = modinfo(kos[0], "vermagic")
            if not vermagic.startswith(kernel.version + " "):
                raise BuildError(f"{kos[0].name} has vermagic {vermagic!r}, "
                                 f"not {kernel.version}: wrong headers?")
            stage = Path(tmp) / "out"
            stage.mkdir()
            shutil.copy2(kos[0], stage / kos[0].name)
            (stage / "build.log").write_text(log)
            meta = {"file": kos[0].name, "name": kos[0].stem, "seconds": round(seconds, 2),
                    "kernel": kernel.version, "source": str(src), "argv": argv,
                    "vermagic": vermagic, "log": log, "date": time.strftime("%FT%TZ",
                                                                             time.gmtime())}
            (stage / "build.json").write_text(json.dumps(meta, indent=1) + "\n")
            shutil.rmtree(out, ignore_errors=True)
            stage.rename(out)
    return Built(path=out / kos[0].name, name=kos[0].stem, key=key, seconds=round(seconds, 2),
                 cached=False, log=log)


NT_GNU_BUILD_ID = 3


def build_id(ko: Path) -> str:
    """The GNU build id of a .ko (an ELF note: namesz 4, descsz, type 3, "GNU\\0", id),
    which the guest shows in /sys/module/<name>/notes/.note.gnu.build-id: the proof that
    the module loaded is this file."""
    data = ko.read_bytes()
    tag = NT_GNU_BUILD_ID.to_bytes(4, "little") + b"GNU\0"
    i = data.find(tag)
    while i >= 8 and int.from_bytes(data[i - 8:i - 4], "little") != 4:
        i = data.find(tag, i + 1)
    if i < 8:
        raise BuildError(f"{ko} has no GNU build-id note: rebuild it (ld --build-id)")
    return note_build_id(data[i - 8:])     # the note starts at namesz


def note_build_id(note: bytes) -> str:
    """The id in the raw note a guest's /sys/module/<name>/notes/.note.gnu.build-id holds."""
    size = int.from_bytes(note[4:8], "little")
    return note[16:16 + size].hex()


def modinfo(ko: Path, field: str) -> str:
    """One modinfo field of a .ko, read on the host."""
    out, _ = _run(["modinfo", "-F", field, str(ko)], None, f"modinfo {ko.name}", 30)
    return out.strip()


# -- BPF objects ---------------------------------------------------------------------------

def clang_argv(src: Path, out: Path) -> list[str]:
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                               text=True).stdout.strip() or "x86_64-linux-gnu"
    return ["clang", "-O2", "-g", "-Wall", "-Werror", "-target", "bpf",
            f"-I/usr/include/{multiarch}", "-c", str(src), "-o", str(out)]


def build_bpf(src: Path, cache: Path | None = None, timeout: float = 120) -> Built:
    """Compile one BPF C file with clang (cached by source and clang version)."""
    src = src.resolve()
    if not (Path("/usr/include/bpf/bpf_helpers.h")).exists():
        raise BuildError("/usr/include/bpf/bpf_helpers.h missing: apt-get install libbpf-dev")
    clang, _ = _run(["clang", "--version"], None, "clang --version", 30)
    h = hashlib.sha256((source_hash(src.parent) + clang).encode()).hexdigest()[:16]
    name = src.name.removesuffix(".c").removesuffix(".bpf")
    key = f"{name}-{h}"
    base = (cache or kernels.cache_dir()) / "bpf"
    out = base / key
    with locked(base / f"{key}.lock"):
        hit = _cached(out, key)
        if hit is not None:
            return hit
        with tempfile.TemporaryDirectory(prefix=f".{key}-", dir=base) as tmp:
            stage = Path(tmp) / "out"
            stage.mkdir()
            obj = stage / f"{name}.bpf.o"
            argv = clang_argv(src, obj)
            log, seconds = _run(argv, src.parent, f"compiling {src}", timeout)
            meta = {"file": obj.name, "name": name, "seconds": round(seconds, 2),
                    "source": str(src), "argv": argv, "clang": clang.splitlines()[0],
                    "log": log}
            (stage / "build.json").write_text(json.dumps(meta, indent=1) + "\n")
            shutil.rmtree(out, ignore_errors=True)
            stage.rename(out)
    return Built(path=out / obj.name, name=name, key=key, seconds=round(seconds, 2),
                 cached=False, log=log)


# -- loading in the guest -------------------------------------------------------------------

@contextmanager
def loaded(vm: VM, module: Built, params: tuple[str, ...] = ()) -> Iterator[Built]:
    """insmod the module in the guest (from its host path), rmmod it afterwards unless
    the test already unloaded it."""
    vm.run(["insmod", str(module.path), *params], timeout=vm.scaled(30))
    try:
        yield module
    finally:
        if not vm.dirty:
            r = vm.run(["rmmod", module.name], timeout=vm.scaled(30), check=False)
            if not r.ok and "not currently loaded" not in r.stderr:
                raise CmdFailed(["rmmod", module.name], r.rc, r.stdout, r.stderr)
