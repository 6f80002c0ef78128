"""Kernels: the catalogue, Debian's packages (through knit's own apt), source builds and
paths, all cached under $KNIT_CACHE. `from knit import kernels` gives the public API."""

from knit.kernels.cache import KERNELS_TOML, ROOT, cache_dir, load_catalog, locked, run_tool
from knit.kernels.catalog import default_kernel, ensure, fetch, is_cached, list_kernels, resolve
from knit.kernels.debian import kernel_dir
from knit.kernels.image import check_image, image_version, resolve_path
from knit.kernels.model import Kernel, parse_config, version_key

__all__ = ["KERNELS_TOML", "ROOT", "Kernel", "cache_dir", "check_image", "default_kernel",
           "ensure", "fetch", "image_version", "is_cached", "kernel_dir", "list_kernels",
           "load_catalog", "locked", "parse_config", "resolve", "resolve_path", "run_tool",
           "version_key"]
