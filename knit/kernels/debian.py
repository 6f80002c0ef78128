"""Debian's kernel packages: resolve a catalogue entry to the newest matching version in
knit's own apt lists, download and extract it into the cache.

Layout of a cached Debian kernel (extracted .debs, normalised so vng and depmod find them
whatever the package layout was: merged /usr, or the split binary/modules/base packages):
    $KNIT_CACHE/kernels/<version>/root/boot/vmlinuz-<version>
    $KNIT_CACHE/kernels/<version>/root/boot/config-<version>
    $KNIT_CACHE/kernels/<version>/root/lib/modules/<version>/      (depmod run)
    $KNIT_CACHE/kernels/<version>/root/usr/src/linux-headers-<version>/
    $KNIT_CACHE/kernels/<version>/complete                         (written last)
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from knit.errors import KernelError
from knit.kernels import apt
from knit.kernels.cache import cache_dir, locked, run_tool
from knit.kernels.image import check_image
from knit.kernels.model import Kernel, version_key

# Debian's version suffix → release, for kernels that name it (6.12.118+deb13-amd64).
RELEASES = {"12": "bookworm", "13": "trixie", "14": "forky"}

Progress = Callable[[str], None]


def _stderr(m: str) -> None:
    print(m, file=sys.stderr)


def patterns(spec: dict) -> list[str]:
    img = spec["image"]
    return [img] if isinstance(img, str) else list(img)


def release_of(version: str, spec: dict) -> str | None:
    m = re.search(r"\+deb(\d+)", version)
    return RELEASES.get(m.group(1)) if m else spec.get("release")


def kernel_dir(version: str) -> Path:
    return cache_dir() / "kernels" / version


def cached_versions(rxs: list[re.Pattern]) -> list[str]:
    base = cache_dir() / "kernels"
    if not base.is_dir():
        return []
    forms = ("linux-image-{}-unsigned", "linux-binary-unsigned-{}")
    return [d.name for d in base.iterdir() if (d / "complete").exists()
            and any(rx.match(f.format(d.name)) for rx in rxs for f in forms)]


def resolve_version(name: str, spec: dict, s: dict) -> str:
    """Newest version of the entry, e.g. debian-6.12 → 6.12.118+deb13-amd64."""
    rxs = [re.compile(p) for p in patterns(spec)]
    versions: list[str] = []
    try:
        apt.update(s)
        for p, rx in zip(patterns(spec), rxs, strict=True):
            versions += [m.group(1) for n in apt.names(s, p.replace(r"\d", "[0-9]"))
                         if (m := rx.match(n))]
    except KernelError:
        if not cached_versions(rxs):
            raise
    if not versions:
        versions = cached_versions(rxs)  # offline: what the cache holds
    if not versions:
        raise KernelError(f"no package in {', '.join(s['suites'])} matches "
                          f"{' or '.join(patterns(spec))} for {name}: "
                          "fix 'image' in kernels/kernels.toml or add the suite under [apt]")
    return max(versions, key=version_key)


def kernel(name: str, spec: dict, s: dict) -> Kernel:
    version = resolve_version(name, spec, s)
    root = kernel_dir(version) / "root"
    return Kernel(name=name, version=version, image=root / "boot" / f"vmlinuz-{version}",
                  headers=root / "usr" / "src" / f"linux-headers-{version}",
                  config_path=root / "boot" / f"config-{version}",
                  release=release_of(version, spec),
                  modules=root / "lib" / "modules" / version)


def is_cached(k: Kernel) -> bool:
    return (kernel_dir(k.version) / "complete").exists()


def packages(s: dict, version: str) -> list[str]:
    """The image (one -unsigned package, or the split binary, modules and base of newer
    kernels), the headers, their -common and the kbuild package."""
    if apt.exists(s, f"linux-image-{version}-unsigned"):
        image = [f"linux-image-{version}-unsigned"]
    elif apt.exists(s, f"linux-binary-unsigned-{version}"):
        image = [f"linux-binary-unsigned-{version}", f"linux-modules-{version}",
                 f"linux-base-{version}"]
    else:
        raise KernelError(f"neither linux-image-{version}-unsigned nor "
                          f"linux-binary-unsigned-{version} is in knit's apt lists: "
                          "run 'knit kernels list --update'")
    headers = f"linux-headers-{version}"
    deps = [d for d in apt.depends(s, headers)
            if re.match(r"linux-(headers|kbuild)-\S+$", d) and d not in image]
    if not deps:
        raise KernelError(f"{headers} not found in knit's apt lists: "
                          "run 'knit kernels list --update'")
    return [*image, headers, *deps]


def normalise(root: Path, version: str) -> None:
    """Put modules under lib/modules and the image and config under boot/, whatever the
    packages' layout; usr/lib/modules becomes a link so either path finds them."""
    mods = root / "lib" / "modules" / version
    usr = root / "usr" / "lib" / "modules"
    if (usr / version).is_dir() and not mods.exists():
        mods.parent.mkdir(parents=True, exist_ok=True)
        (usr / version).rename(mods)
    if usr.is_dir() and not usr.is_symlink() and not any(usr.iterdir()):
        usr.rmdir()
    if not usr.exists():
        usr.parent.mkdir(parents=True, exist_ok=True)
        usr.symlink_to("../../lib/modules")
    boot = root / "boot"
    boot.mkdir(exist_ok=True)
    for want, found in ((f"vmlinuz-{version}", ("vmlinuz.unsigned", "vmlinuz")),
                        (f"config-{version}", ("config",)),
                        (f"System.map-{version}", ("System.map",))):
        if (boot / want).exists():
            continue
        src = next((mods / f for f in found if (mods / f).exists()), None)
        if src is not None:
            shutil.copy2(src, boot / want)


def fetch(k: Kernel, s: dict, force: bool = False, progress: Progress = _stderr) -> Kernel:
    """Download, extract and depmod a kernel into the cache. Idempotent and locked."""
    kd = kernel_dir(k.version)
    with locked(cache_dir() / "kernels" / f".{k.version}.lock"):
        if is_cached(k) and not force:
            progress(f"{k.name}: {k.version} already cached in {kd}")
            k.load_config()
            return k
        shutil.rmtree(kd, ignore_errors=True)
        kd.mkdir(parents=True)
        pkgs = packages(s, k.version)
        with tempfile.TemporaryDirectory(dir=kd) as tmp:
            progress(f"{k.name}: downloading {', '.join(pkgs)}")
            apt.download(s, pkgs, Path(tmp))
            for i, deb in enumerate(sorted(Path(tmp).glob("*.deb")), 1):
                progress(f"{k.name}: [{i}/{len(pkgs)}] extracting {deb.name}")
                run_tool(["dpkg-deb", "-x", str(deb), str(kd / "root")],
                         fix=f"the download is corrupt: run 'knit kernels fetch {k.name} "
                             "--force'")
        normalise(kd / "root", k.version)
        check_image(k.image)
        assert k.modules is not None and k.headers is not None
        build = k.modules / "build"
        if build.is_symlink() or build.exists():
            build.unlink()
        build.symlink_to(k.headers)  # guest tools (bcc, kbuild) find headers through it
        progress(f"{k.name}: depmod {k.version}")
        run_tool(["depmod", "-a", "-b", str(kd / "root"), k.version],
                 fix="install kmod (apt-get install kmod)")
        (kd / "complete").write_text(json.dumps({"name": k.name, "version": k.version,
                                                 "packages": pkgs}) + "\n")
        progress(f"{k.name}: {k.version} ready in {kd}")
    k.load_config()
    return k
