"""Fixtures of the TOA suite. Every case that uses `toa` (or `toa_net`) runs once per TOA
implementation named by `--toa-impl kmod|bpf|all` (suites/conftest.py), shown in the test
id: test_x[debian-6.12-kmod], test_x[debian-6.12-bpf].

    kmod  the module built for the test's kernel (on the host, cached under $KNIT_CACHE/kmod)
          and loaded in the guest for one test; `--toa-src PATH` swaps in a vendor's source
    bpf   bpf/toa compiled once on the host (cached under $KNIT_CACHE/bpf; one object for
          every kernel), attached with bpftool to a cgroup of the backend's servers
"""

from __future__ import annotations

import compileall
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from knit import kbuild, requirements
from knit.kernels import Kernel
from knit.paths import ROOT
from knit.vm import VM
from suites.toa.lib.impl import ALLOW, BPF_SRC, Toa, bpf_attached, selected, sha256
from suites.toa.lib.net import SOCKOPS_TOA_ADDR, ToaNet, topology

REFERENCE_SRC = ROOT / "kmod" / "toa"
_BUILDS: dict[tuple[str, str], dict] = {}
_OVERHEAD: dict[str, dict] = {}


@pytest.hookimpl(trylast=True)  # after knit's kernel parameter: test_x[debian-6.12-bpf]
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "toa_impl" in metafunc.fixturenames:
        impls = selected(metafunc.config)
        metafunc.parametrize("toa_impl", impls, ids=impls, indirect=True)


@pytest.fixture
def toa_impl(request: pytest.FixtureRequest) -> str:
    """kmod or bpf (parametrized by --toa-impl)."""
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _guest_bytecode() -> None:
    """Byte-compile the guest-side modules on the host: each vm.call is a fresh fork that
    imports them, and compiling under TCG costs ~0.3 s a module (PYTHONDONTWRITEBYTECODE is
    set for the agent, so the guest never keeps its own .pyc)."""
    for d in (ROOT / "suites" / "toa" / "lib", ROOT / "knit" / "guest"):
        compileall.compile_dir(d, quiet=1, maxlevels=0)


@pytest.fixture(scope="session")
def toa_src(pytestconfig: pytest.Config) -> Path:
    src = pytestconfig.getoption("toa_src", default=None)
    return Path(src).expanduser().resolve() if src else REFERENCE_SRC


def _record(request: pytest.FixtureRequest, kind: str, built: kbuild.Built) -> None:
    request.node.user_properties += [("toa_impl", kind), ("toa_module", str(built.path)),
                                     ("toa_sha256", sha256(built.path)),
                                     ("toa_build_s", built.seconds),
                                     ("toa_build_cached", built.cached)]


def _ko(request: pytest.FixtureRequest, toa_src: Path, kernel: Kernel) -> kbuild.Built:
    try:
        built = kbuild.build_module(toa_src, kernel)
    except kbuild.BuildError as e:
        pytest.fail(str(e), pytrace=False)
    _record(request, "kmod", built)
    return built


def _bpf_obj(request: pytest.FixtureRequest, kernel: Kernel) -> kbuild.Built:
    missing = requirements.missing_kconfig(kernel, ("CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL"))
    if missing:
        pytest.skip(f"bpf/toa needs {'; '.join(missing)} in {kernel.name}")
    try:
        built = kbuild.build_bpf(BPF_SRC)
    except kbuild.BuildError as e:
        pytest.fail(str(e), pytrace=False)
    _record(request, "bpf", built)
    return built


@pytest.fixture
def toa_ko(request: pytest.FixtureRequest, toa_src: Path, knit_kernel: Kernel) -> kbuild.Built:
    """toa.ko for this kernel, built on the host (or taken from the cache)."""
    return _ko(request, toa_src, knit_kernel)


@pytest.fixture
def toa_bpf_obj(request: pytest.FixtureRequest, knit_kernel: Kernel) -> kbuild.Built:
    """bpf/toa's object: compiled on the host, independent of the kernel (uapi only)."""
    return _bpf_obj(request, knit_kernel)


@contextmanager
def _active(machine: VM, impl: str, built: kbuild.Built) -> Iterator[Toa]:
    if impl == "kmod":
        with kbuild.loaded(machine, built):
            yield Toa("kmod", built, {"kind": "kmod", "module": built.name})
        return
    with bpf_attached(machine, built, ALLOW) as state:
        yield Toa("bpf", built, state)


@pytest.fixture
def toa(request: pytest.FixtureRequest, vm: VM, toa_impl: str) -> Iterator[Toa]:
    """The TOA under test, active for this test: the module loaded (rmmod'ed after), or the
    BPF programs attached to a fresh cgroup with ALLOW as allowlist (detached after)."""
    built = request.getfixturevalue("toa_ko" if toa_impl == "kmod" else "toa_bpf_obj")
    with _active(vm, toa_impl, built) as t:
        yield t


@pytest.fixture
def peer_toa(request: pytest.FixtureRequest, peer: VM, toa_impl: str,
             toa_src: Path) -> Iterator[Toa]:
    """`toa` on the peer VM, for the peer's kernel: the backend of a multi_vm case."""
    kernel = peer.cfg.kernel
    built = _ko(request, toa_src, kernel) if toa_impl == "kmod" else _bpf_obj(request, kernel)
    with _active(peer, toa_impl, built) as t:
        yield t


@pytest.fixture
def toa_net(vm: VM, topo, toa: Toa) -> ToaNet:
    """TOA active, backend and client namespaces built."""
    topo(topology())
    return ToaNet(vm, toa.impl)


@pytest.fixture
def reference_only(toa_impl: str, toa_src: Path) -> None:
    """Cases that read the reference module's `entries` parameter or exact stats rows."""
    if toa_impl == "kmod" and toa_src != REFERENCE_SRC:
        pytest.skip(f"needs kmod/toa's entries parameter and toa_stats rows; "
                    f"--toa-src {toa_src} may not have them")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the controller under xdist too: the properties travel with the report.
    props = dict(report.user_properties)
    if report.when == "setup" and "toa_build_s" in props:
        _BUILDS.setdefault((props["toa_impl"], props.get("kernel_version", "?")), props)
    if report.when == "call" and "toa_overhead" in props:
        _OVERHEAD[props.get("kernel_version", "?")] = props["toa_overhead"]


def pytest_terminal_summary(terminalreporter) -> None:
    for (impl, version), p in sorted(_BUILDS.items()):
        how = "from the cache, built earlier in" if p["toa_build_cached"] else "built in"
        terminalreporter.write_line(f"toa {impl}: {p['toa_module']} (sha256 "
                                    f"{p['toa_sha256'][:16]}) for {version}: "
                                    f"{how} {p['toa_build_s']:.1f} s")
    for version, o in sorted(_OVERHEAD.items()):
        terminalreporter.write_line(f"toa overhead on {version}, {o['n']} connections, "
                                    f"median of {o['rounds']}: {json.dumps(o)}")


@pytest.fixture
def toa_sockops(vm: VM) -> Iterator[dict]:
    """bpf/toa_sockops compiled on the host, attached in the guest to a fresh cgroup v2;
    its option carries SOCKOPS_TOA_ADDR. Yields the guest-side state (cgroup path...)."""
    try:
        obj = kbuild.build_bpf(ROOT / "bpf" / "toa_sockops" / "toa_sockops.bpf.c")
    except kbuild.BuildError as e:
        pytest.fail(str(e), pytrace=False)
    state = vm.call("suites.toa.lib.bpf:attach", obj=str(obj.path), addr=SOCKOPS_TOA_ADDR)
    yield state
    if not vm.dirty:
        vm.call("suites.toa.lib.bpf:detach", state=state)
