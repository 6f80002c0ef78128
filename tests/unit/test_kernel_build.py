"""Config fragments: what a build asks for and what kconfig dropped."""

from pathlib import Path

from knit import kernels
from knit.kernels import build as kernel_build

DATA = Path(__file__).parent / "data"


def test_every_fragment_parses_and_default_set_exists():
    frags = kernel_build.fragments([*kernel_build.DEFAULT_CONFIGS, "debug"])
    want = kernel_build.wanted(frags)
    assert want["CONFIG_MPTCP"] == "y" and want["CONFIG_TIPC"] == "y"
    assert want["CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF"] == "n"


def test_dropped_names_each_option_kconfig_did_not_keep(tmp_path):
    frag = tmp_path / "x.config"
    frag.write_text("CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=\"s\"\n")
    final = kernels.parse_config('CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\nCONFIG_D="s"\n')
    assert kernel_build.dropped([frag], final) == ["CONFIG_B=m (got y)", "CONFIG_C=n (got y)"]
    assert kernel_build.dropped([frag], {}) == [
        "CONFIG_A=y (got not set)", "CONFIG_B=m (got not set)", 'CONFIG_D=s (got not set)']


def test_cache_key_changes_with_fragment_content(tmp_path):
    f = tmp_path / "a.config"
    f.write_text("CONFIG_A=y\n")
    h1 = kernel_build.config_hash([f])
    f.write_text("CONFIG_A=m\n")
    assert kernel_build.config_hash([f]) != h1


def test_build_failure_names_the_cause_not_the_tail():
    # Real output: CONFIG_IKHEADERS needs cpio, which a Debian 12 host may lack.
    msg = kernel_build.why(DATA / "kbuild_no_cpio_6.12.117.log")
    assert "'cpio' could not be found" in msg
    assert "kheaders_data.tar.xz] Error 1" in msg
