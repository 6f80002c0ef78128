"""Kernel names → kernels: the catalogue (kernels/kernels.toml) dispatches to Debian's
packages, source builds or a path. Imports point one way: catalog → debian | build |
image → cache."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from knit.errors import KernelError
from knit.kernels import apt, debian
from knit.kernels import build as kernel_build
from knit.kernels.cache import load_catalog
from knit.kernels.image import resolve_path
from knit.kernels.model import Kernel


def default_kernel() -> str:
    return load_catalog()["default"]


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
    return debian.kernel(name, spec, apt.settings(catalog))


def resolve_built(name: str, spec: dict | None) -> Kernel | None:
    """A kernel built by 'knit kernels build NAME' (None if NAME was never built and is
    not a build entry of the catalog)."""
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


def is_cached(k: Kernel) -> bool:
    if k.name.startswith("path:") or k.image.is_dir() or k.modules is None:
        return True
    return debian.is_cached(k)


def fetch(name: str, force: bool = False,
          progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> Kernel:
    """Download a catalogue kernel into the cache (idempotent); others resolve as they are."""
    k = resolve(name)
    if name.startswith("path:") or k.image.is_dir():
        return k
    return debian.fetch(k, apt.settings(), force=force, progress=progress)


def ensure(name: str) -> Kernel:
    """Resolve and fetch if needed (what the pytest plugin uses)."""
    k = resolve(name)
    if not is_cached(k):
        k = fetch(name)
    k.load_config()
    return k


def list_kernels(update: bool = False) -> list[dict]:
    catalog = load_catalog()
    s = apt.settings(catalog)
    if update:
        apt.update(s, force=True)
    rows = []
    for name in sorted(catalog.get("kernel", {})):
        spec = catalog["kernel"][name]
        try:
            k = resolve(name)
            row = {"name": name, "version": k.version, "cached": is_cached(k),
                   "release": k.release, "suite": None, "package": None}
            if spec.get("source") == "debian":
                pkg = debian.packages(s, k.version)[0]
                row.update(package=pkg, suite=apt.suite_of(s, pkg))
            rows.append(row)
        except KernelError as e:
            rows.append({"name": name, "version": None, "cached": False, "error": str(e)})
    return rows
