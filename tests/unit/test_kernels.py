"""Kernel names, images and configs, resolved without booting anything."""

from pathlib import Path

import pytest

from knit import kernels, requirements
from knit.errors import KernelError


def test_default_kernel_is_debian_6_12():
    assert kernels.default_kernel() == "debian-6.12"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KernelError, match="unknown kernel 'debian-9.9': use one of "
                                          "debian-6.1, debian-6.12"):
        kernels.resolve("debian-9.9")


def test_missing_path_is_one_line_with_the_fix(tmp_path):
    with pytest.raises(KernelError) as e:
        kernels.resolve(f"path:{tmp_path}/nope")
    assert "does not exist" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_image_is_rejected_before_qemu(tmp_path):
    img = tmp_path / "bzImage"
    img.write_bytes(b"\x7fELF" + bytes(4096))
    with pytest.raises(KernelError, match="is not a bzImage .*knit kernels fetch NAME --force"):
        kernels.resolve(f"path:{img}")


def test_build_tree_without_bzimage_says_build_it(tmp_path):
    (tmp_path / ".config").write_text("CONFIG_NET=y\n")
    with pytest.raises(KernelError, match="not a built kernel tree"):
        kernels.resolve(f"path:{tmp_path}")


def test_version_ordering_is_numeric():
    assert max(["6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-10-amd64"],
               key=kernels.version_key) == "6.1.0-56-amd64"
    assert kernels.version_key("6.12.117+deb12-amd64") > kernels.version_key("6.1.0-56-amd64")


def test_parse_config_keeps_set_options_only():
    cfg = kernels.parse_config('CONFIG_MPTCP=y\n# CONFIG_TIPC is not set\nCONFIG_X="a b"\n'
                               "CONFIG_VETH=m\n")
    assert cfg == {"CONFIG_MPTCP": "y", "CONFIG_X": "a b", "CONFIG_VETH": "m"}


def test_requirements_name_what_is_missing():
    k = kernels.Kernel(name="debian-6.12", version="6.12.117+deb12-amd64",
                       image=Path("/nonexistent"),
                       config={"CONFIG_MPTCP": "y", "CONFIG_TIPC": "m"})
    assert requirements.missing_kconfig(k, ("CONFIG_MPTCP", "CONFIG_TIPC")) == []
    assert requirements.missing_kconfig(k, ("CONFIG_FOO",)) == ["CONFIG_FOO not set in debian-6.12"]
    assert requirements.version_problem(k, min="6.13") == \
        "needs kernel >= 6.13, debian-6.12 is 6.12.117+deb12-amd64"
    assert requirements.version_problem(k, min="6.1") is None
