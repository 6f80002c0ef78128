"""The guest runs on knit's root tree: it sees its own userspace, the checkout and knit's
cache read-only, and can write only the artifacts folder."""

import pytest

from knit import kernels


@pytest.fixture
def tree(vm):
    if vm.cfg.userspace.root is None:
        pytest.skip("--userspace host: the guest is the host's own /")
    return vm.cfg.userspace


def test_guest_runs_the_trees_userspace_not_the_hosts(vm, tree, tmp_path):
    release = tree.path("/etc/debian_version").read_text()
    assert vm.run(["cat", "/etc/debian_version"]).stdout == release
    assert vm.run(["python3", "-c", "import scapy, pyroute2"]).ok
    # A file of the host's own / (outside the checkout and knit's cache) exists here, the
    # control, and not in the guest.
    host_only = tmp_path / "host-only"
    host_only.write_text("")
    assert host_only.exists()
    assert not vm.run(["test", "-e", str(host_only)], check=False).ok


def test_guest_writes_the_artifacts_and_nothing_else(vm, tree, artifacts_dir):
    mine = artifacts_dir / "written-by-the-guest"
    assert vm.run(["touch", str(mine)]).ok and mine.exists()   # the control
    for p in (kernels.ROOT / ".knit-guest-write-test",
              kernels.cache_dir() / ".knit-guest-write-test"):
        r = vm.run(["touch", str(p)], check=False)
        assert not r.ok and not p.exists(), f"the guest could write {p}"
        assert vm.run(["test", "-d", str(p.parent)]).ok   # it does see the folder
