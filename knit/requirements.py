"""Test requirements (kconfig, kernel version) checked against a kernel, without booting it."""

from __future__ import annotations

from knit.kernels import Kernel, version_key


def missing_kconfig(kernel: Kernel, options: tuple[str, ...]) -> list[str]:
    """Options not =y/=m in the kernel's config, as sentences naming the kernel."""
    if not kernel.config:
        return [f"no kernel config known for {kernel.name}, so {', '.join(options)} "
                "cannot be checked"]
    return [f"{opt} not set in {kernel.name}" for opt in options
            if kernel.config.get(opt) not in ("y", "m")]


def version_problem(kernel: Kernel, min: str | None = None, max: str | None = None) -> str | None:
    v = version_key(kernel.version)
    if min and v < version_key(min):
        return f"needs kernel >= {min}, {kernel.name} is {kernel.version}"
    if max and v > version_key(max):
        return f"needs kernel <= {max}, {kernel.name} is {kernel.version}"
    return None
