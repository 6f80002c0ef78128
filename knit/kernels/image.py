"""Kernels given by path: a bzImage or a built tree. Checks an image before qemu does."""

from __future__ import annotations

from pathlib import Path

from knit.errors import KernelError
from knit.kernels.model import Kernel

BZIMAGE_MAGIC_OFFSET, BZIMAGE_MAGIC = 0x202, b"HdrS"


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
