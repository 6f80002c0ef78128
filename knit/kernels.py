"""Kernel names → vmlinuz, modules, headers and config, fetched from Debian and cached.

Layout of a cached Debian kernel (an extracted set of .debs, which vng understands):
    $KNIT_CACHE/kernels/<version>/root/boot/vmlinuz-<version>
    $KNIT_CACHE/kernels/<version>/root/lib/modules/<version>/      (depmod run)
    $KNIT_CACHE/kernels/<version>/root/usr/src/linux-headers-<version>/
    $KNIT_CACHE/kernels/<version>/complete                         (written last)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from knit.errors import KernelError

ROOT = Path(__file__).resolve().parent.parent
KERNELS_TOML = ROOT / "kernels" / "kernels.toml"
BZIMAGE_MAGIC_OFFSET, BZIMAGE_MAGIC = 0x202, b"HdrS"


def cache_dir() -> Path:
    return Path(os.environ.get("KNIT_CACHE", Path.home() / ".cache" / "knit"))


def load_catalog(path: Path = KERNELS_TOML) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def default_kernel() -> str:
    return load_catalog()["default"]


@dataclass
class Kernel:
    """A resolved kernel. `image` is what vng -r gets (a vmlinuz or a build tree)."""

    name: str
    version: str
    image: Path
    headers: Path | None = None
    config_path: Path | None = None
    config: dict[str, str] = field(default_factory=dict, repr=False)

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


# -- Debian package resolution ------------------------------------------------------

def _apt_names(regex: str) -> list[str]:
    """Package names matching `regex` in the local apt lists."""
    try:
        out = subprocess.run(["apt-cache", "search", "--names-only", regex],
                             capture_output=True, text=True, timeout=120).stdout
    except FileNotFoundError as e:
        raise KernelError("apt-cache not found: knit fetches kernels from Debian's packages") from e
    return [line.split(" ", 1)[0] for line in out.splitlines() if line.strip()]


def resolve_debian(name: str, spec: dict) -> str:
    """Newest version of the series, e.g. debian-6.12 → 6.12.117+deb12-amd64."""
    rx = re.compile(spec["image"])
    apt_rx = spec["image"].replace(r"\d", "[0-9]")  # apt-cache takes POSIX regexes
    versions = [m.group(1) for n in _apt_names(apt_rx) if (m := rx.match(n))]
    if not versions:
        cached = cached_versions(rx)
        if cached:
            return max(cached, key=version_key)
        raise KernelError(f"no package matches {spec['image']} for {name}: "
                          "run 'apt-get update' (Debian 12 with main enabled)")
    return max(versions, key=version_key)


def cached_versions(rx: re.Pattern) -> list[str]:
    base = cache_dir() / "kernels"
    if not base.is_dir():
        return []
    return [d.name for d in base.iterdir()
            if (d / "complete").exists() and rx.match(f"linux-image-{d.name}-unsigned")]


def kernel_dir(version: str) -> Path:
    return cache_dir() / "kernels" / version


def resolve(name: str) -> Kernel:
    """Resolve a kernel name without fetching. Unknown names are a KernelError."""
    if name.startswith("path:"):
        return resolve_path(name)
    catalog = load_catalog()
    spec = catalog.get("kernel", {}).get(name)
    if spec is None or spec.get("source") == "build":
        built = resolve_built(name, spec)
        if built is not None:
            return built
    if spec is None:
        known = ", ".join(sorted(catalog.get("kernel", {})))
        raise KernelError(f"unknown kernel '{name}': use one of {known}, "
                          "or path:/some/bzImage, or path:/some/build-tree")
    version = resolve_debian(name, spec)
    root = kernel_dir(version) / "root"
    k = Kernel(name=name, version=version, image=root / "boot" / f"vmlinuz-{version}",
               headers=root / "usr" / "src" / f"linux-headers-{version}",
               config_path=root / "boot" / f"config-{version}")
    return k


def resolve_built(name: str, spec: dict | None) -> Kernel | None:
    """A kernel built by 'knit kernels build NAME' (None if NAME was never built and is
    not a build entry of the catalog)."""
    from knit import kernel_build

    out = kernel_build.current(name)
    if out is None:
        if spec is None:
            return None
        raise KernelError(f"{name} is built from source and not built yet: "
                          f"run 'knit kernels build {name}'")
    meta = json.loads((out.parent / "build.json").read_text())
    if spec is not None:
        frags = kernel_build.fragments(spec.get("configs", kernel_build.DEFAULT_CONFIGS))
        if meta["config_sha256"] != kernel_build.config_hash(frags):
            raise KernelError(f"{name} was built with other config fragments than "
                              f"kernels/configs has now: run 'knit kernels build {name}'")
    k = resolve_path(f"path:{out}")
    k.name = name
    return k


def resolve_path(name: str) -> Kernel:
    p = Path(name[len("path:"):]).expanduser().resolve()
    if p.is_dir():
        bz = p / "arch" / "x86" / "boot" / "bzImage"
        if not (p / ".config").exists() or not bz.exists():
            raise KernelError(f"{p} is not a built kernel tree (no .config or bzImage): "
                              "build it first, e.g. with vng --build")
        check_image(bz)
        k = Kernel(name=name, version=image_version(bz), image=p, headers=p,
                   config_path=p / ".config")
    elif p.is_file():
        check_image(p)
        version = image_version(p)
        config = p.parent / f"config-{version}"
        k = Kernel(name=name, version=version, image=p, config_path=config)
    else:
        raise KernelError(f"{p} does not exist: give path:/some/bzImage or path:/some/build-tree")
    k.load_config()
    return k


def check_image(path: Path) -> None:
    """Reject what is not an x86 bzImage before qemu does, with a fix in the message."""
    try:
        with open(path, "rb") as f:
            f.seek(BZIMAGE_MAGIC_OFFSET)
            ok = f.read(4) == BZIMAGE_MAGIC
    except OSError as e:
        raise KernelError(f"cannot read kernel image {path}: {e.strerror}") from e
    if not ok:
        raise KernelError(f"{path} is not a bzImage (corrupt or wrong file): "
                          "re-fetch it with 'knit kernels fetch NAME --force' or rebuild it")


def image_version(path: Path) -> str:
    """The `uname -r` a bzImage will report, read from its header's version string."""
    with open(path, "rb") as f:
        f.seek(0x20E)
        off = int.from_bytes(f.read(2), "little") + 0x200
        f.seek(off)
        raw = f.read(256)
    return raw.split(b" ", 1)[0].decode("ascii", "replace")


# -- fetching -------------------------------------------------------------------------

def is_cached(k: Kernel) -> bool:
    if k.name.startswith("path:") or k.image.is_dir():
        return True
    return (kernel_dir(k.version) / "complete").exists()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock file, shared by xdist workers and concurrent knit commands."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def header_packages(version: str) -> list[str]:
    """linux-headers-<v>, its -common and the kbuild package, as apt says they depend."""
    pkg = f"linux-headers-{version}"
    out = subprocess.run(["apt-cache", "depends", pkg], capture_output=True, text=True,
                         timeout=120).stdout
    deps = re.findall(r"Depends: (linux-(?:headers|kbuild)-\S+)", out)
    if not deps:
        raise KernelError(f"{pkg} not found in apt: run 'apt-get update'")
    return [pkg, *deps]


def fetch(name: str, force: bool = False,
          progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> Kernel:
    """Download, extract and depmod a kernel into the cache. Idempotent and locked."""
    k = resolve(name)
    if name.startswith("path:") or k.image.is_dir():
        return k
    kd = kernel_dir(k.version)
    with locked(cache_dir() / "kernels" / f".{k.version}.lock"):
        if is_cached(k) and not force:
            progress(f"{name}: {k.version} already cached in {kd}")
            k.load_config()
            return k
        shutil.rmtree(kd, ignore_errors=True)
        kd.mkdir(parents=True)
        pkgs = [f"linux-image-{k.version}-unsigned", *header_packages(k.version)]
        with tempfile.TemporaryDirectory(dir=kd) as tmp:
            for i, pkg in enumerate(pkgs, 1):
                progress(f"{name}: [{i}/{len(pkgs)}] downloading {pkg}")
                run_tool(["apt-get", "download", "-q", pkg], cwd=tmp,
                     fix=f"check that {pkg} exists ('apt-cache policy {pkg}') and apt works")
            for i, deb in enumerate(sorted(Path(tmp).glob("*.deb")), 1):
                progress(f"{name}: [{i}/{len(pkgs)}] extracting {deb.name}")
                run_tool(["dpkg-deb", "-x", str(deb), str(kd / "root")],
                     fix="the download is corrupt: run 'knit kernels fetch NAME --force'")
        check_image(k.image)
        moddir = kd / "root" / "lib" / "modules" / k.version
        build = moddir / "build"
        if build.is_symlink() or build.exists():
            build.unlink()
        build.symlink_to(k.headers)  # guest tools (bcc, kbuild) find headers through it
        progress(f"{name}: depmod {k.version}")
        run_tool(["depmod", "-a", "-b", str(kd / "root"), k.version], fix="install kmod")
        (kd / "complete").write_text(json.dumps({"name": name, "version": k.version,
                                                 "packages": pkgs}) + "\n")
        progress(f"{name}: {k.version} ready in {kd}")
    k.load_config()
    return k


def ensure(name: str) -> Kernel:
    """Resolve and fetch if needed (what the pytest plugin uses)."""
    k = resolve(name)
    if not is_cached(k):
        k = fetch(name)
    k.load_config()
    return k


def run_tool(argv: list[str], fix: str, cwd: str | None = None) -> None:
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError as e:
        raise KernelError(f"{argv[0]} not found: {fix}") from e
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise KernelError(f"{' '.join(argv[:3])} failed: {last}: {fix}")


def list_kernels() -> list[dict]:
    rows = []
    for name in sorted(load_catalog().get("kernel", {})):
        try:
            k = resolve(name)
            rows.append({"name": name, "version": k.version, "cached": is_cached(k)})
        except KernelError as e:
            rows.append({"name": name, "version": None, "cached": False, "error": str(e)})
    return rows
