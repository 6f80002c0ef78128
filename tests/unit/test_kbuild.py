"""knit.kbuild on the host: source identity, the make command for Debian's extracted
headers, and one build shared by concurrent workers (real headers from $KNIT_CACHE)."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest

from knit import kbuild, kernels
from knit.errors import KernelError
from knit.paths import ROOT

TOA = ROOT / "kmod" / "toa"


def cached_kernel(name: str = "debian-6.12") -> kernels.Kernel:
    try:
        k = kernels.resolve(name)
    except KernelError as e:
        pytest.skip(f"{name}: {e}")
    if not (k.headers and k.headers.is_dir()):
        pytest.skip(f"headers of {name} not in $KNIT_CACHE: run 'knit kernels fetch {name}'")
    return k


def test_source_hash_follows_content_not_build_products(tmp_path: Path) -> None:
    src = tmp_path / "toa"
    shutil.copytree(TOA, src)
    h = kbuild.source_hash(src)
    assert h == kbuild.source_hash(TOA)                 # the folder's location is not part of it
    (src / "toa.ko").write_bytes(b"\x7fELF")            # build products do not count
    (src / ".toa.o.cmd").write_text("x")
    assert kbuild.source_hash(src) == h
    (src / "toa.c").write_text((src / "toa.c").read_text() + "\n")
    assert kbuild.source_hash(src) != h


@pytest.mark.parametrize("name", ["debian-6.12", "debian-6.1"])
def test_make_uses_the_extracted_common_makefile(name: str, tmp_path: Path) -> None:
    k = cached_kernel(name)
    argv = kbuild.make_argv(k.headers, tmp_path)
    common = argv[argv.index("-f") + 1]
    assert Path(common).parent.name.endswith("-common") and Path(common).is_file()
    assert Path(common).is_relative_to(kernels.cache_dir())
    assert argv[argv.index("-C") + 1] == str(k.headers) and f"M={tmp_path}" in argv
    no_btf = (k.headers / "vmlinux").exists() and shutil.which("pahole") is None
    assert ("CONFIG_DEBUG_INFO_BTF_MODULES=" in argv) == no_btf


def test_a_kernel_build_tree_needs_no_fixup(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("VERSION = 6\n")
    assert kbuild.make_argv(tmp_path, tmp_path / "m") == [
        "make", "-j2", "-C", str(tmp_path), f"M={tmp_path / 'm'}", "modules"]


def _build(args: tuple[str, str]) -> tuple[bool, str]:
    name, cache = args
    b = kbuild.build_module(TOA, kernels.resolve(name), cache=Path(cache))
    return b.cached, str(b.path)


def test_concurrent_workers_build_once_and_share_the_result(tmp_path: Path) -> None:
    k = cached_kernel()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build, [(k.name, str(tmp_path))] * 2)
    assert sorted(cached for cached, _ in results) == [False, True]   # one built, one waited
    ko = Path(results[0][1])
    assert results[0][1] == results[1][1] and ko.name == "toa.ko"
    assert ko.parent.parent == tmp_path / "kmod" / k.version
    assert kbuild.modinfo(ko, "vermagic").startswith(k.version + " ")
    assert not list(ko.parent.parent.glob(".toa-*"))                  # no stray build dirs
