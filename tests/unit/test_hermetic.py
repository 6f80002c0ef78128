"""Hermetic guests without a VM: knit's own apt, package layouts, the chroot script and
the vng command of a root-tree guest."""

from pathlib import Path

from knit import chroot, vngcmd
from knit.kernels import apt, debian


def test_apt_uses_only_knits_own_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KNIT_CACHE", str(tmp_path))
    s = apt.settings({"apt": {"suites": ["trixie"], "security_suites": []}})
    opts = apt.options(s)
    paths = [o.split("=", 1)[1] for o in opts if o.startswith("Dir::")]
    assert paths and all(p.startswith(str(tmp_path)) for p in paths)
    assert apt.sources_text(s).splitlines() == [
        f"deb [arch=amd64 signed-by={s['keyring']}] {s['mirror']} trixie main"]


def test_mirror_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("KNIT_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert apt.settings({})["mirror"] == "http://mirror.example/debian"


def test_split_merged_usr_packages_are_normalised(tmp_path):
    v = "7.3.4+deb13-amd64"
    mods = tmp_path / "usr" / "lib" / "modules" / v   # linux-binary/-modules/-base layout
    mods.mkdir(parents=True)
    (mods / "vmlinuz.unsigned").write_bytes(b"image")
    (mods / "config").write_text("CONFIG_MPTCP=y\n")
    (mods / "kernel").mkdir()
    debian.normalise(tmp_path, v)
    assert (tmp_path / "boot" / f"vmlinuz-{v}").read_bytes() == b"image"
    assert (tmp_path / "boot" / f"config-{v}").exists()
    assert (tmp_path / "lib" / "modules" / v / "kernel").is_dir()
    assert (tmp_path / "usr" / "lib" / "modules" / v / "kernel").is_dir()  # through the link


def test_release_follows_the_debian_suffix():
    assert debian.release_of("6.12.118+deb13-amd64", {}) == "trixie"
    assert debian.release_of("6.12.118+deb12-amd64", {}) == "bookworm"
    assert debian.release_of("6.1.0-57-amd64", {"release": "bookworm"}) == "bookworm"


def test_chroot_binds_then_execs_in_the_tree():
    sh = chroot.script(Path("/r"), ["make", "-C", "/k"], ro=(Path("/k"),), rw=(Path("/w"),),
                       cwd=Path("/w"))
    lines = sh.splitlines()
    assert "mount --rbind /k /r/k" in lines and "mount -o remount,bind,ro /r/k" in lines
    assert "mount --rbind /w /r/w" in lines and "mount -o remount,bind,ro /r/w" not in lines
    assert lines[-1].startswith("exec chroot /r /usr/bin/env -i -C /w PATH=")
    assert lines[-1].endswith("make -C /k")


def test_root_tree_guest_gets_root_and_same_path_mounts():
    argv = vngcmd.build(vngcmd.VngSpec(image=Path("/k/vmlinuz"), command=["true"],
                                       root=Path("/rootfs"), rwdirs=(Path("/art"),),
                                       rodirs=((Path("/src"), Path("/src")),)))
    assert argv[argv.index("--root") + 1] == "/rootfs"
    assert "--rodir=/src=/src" in argv and "--rwdir=/art=/art" in argv




def test_a_writable_folder_inside_a_read_only_one_is_found_for_the_agent():
    from knit.guest import agent

    cmdline = ("console=ttyS0 virtme_initmount0=/work/main/artifacts virtme_initmount0_access=rw "
               "virtme_initmount0_fstype=9p virtme_initmount1=/work/main "
               "virtme_initmount1_access=ro virtme_initmount2=/root/.cache/knit "
               "virtme_initmount2_access=ro virtme_initmount3=/tmp/x virtme_initmount3_access=rw")
    mounts = agent.initmounts(cmdline)
    assert mounts[0] == (0, "/work/main/artifacts", True) and len(mounts) == 4
    # vng mounts every --rwdir before every --rodir: the checkout covers artifacts/.
    assert agent.shadowed(mounts) == [("/work/main/artifacts", "/work/main")]
