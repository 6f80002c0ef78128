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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from knit import kbuild, requirements
from knit.kernels import Kernel
from knit.paths import ROOT
from knit.vm import VM
from suites.toa.lib.impl import (
    ALLOW,
    BPF_SRC,
    Toa,
    bpf_attached,
    kmod_params,
    selected,
    sha256,
)
from suites.toa.lib.net import SOCKOPS_TOA_ADDR, ToaNet, topology
from suites.toa.lib.wire import DEFAULT_KIND, OptionKind

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
    src = (pytestconfig.getoption("toa_src", default=None)
           or pytestconfig.getoption("toa_reference_src", default=None))
    return Path(src).expanduser().resolve() if src else REFERENCE_SRC


@pytest.fixture(scope="session")
def toa_bpf_src(pytestconfig: pytest.Config) -> Path:
    """bpf/toa/toa.bpf.c, or the file --toa-bpf-src names (a mutant)."""
    src = pytestconfig.getoption("toa_bpf_src", default=None)
    return Path(src).expanduser().resolve() if src else BPF_SRC


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
    src = request.getfixturevalue("toa_bpf_src")
    missing = requirements.missing_kconfig(kernel, ("CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL"))
    if missing:
        pytest.skip(f"bpf/toa needs {'; '.join(missing)} in {kernel.name}")
    try:
        built = kbuild.build_bpf(src)
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


@pytest.fixture
def toa_kind(request: pytest.FixtureRequest) -> OptionKind:
    """The option the TOA reads: 254/8 unless a test parametrizes it (indirect=True, ids
    from OptionKind.id: test_x[debian-6.12-kind200-len8-kmod])."""
    return getattr(request, "param", DEFAULT_KIND)


@contextmanager
def _active(machine: VM, impl: str, built: kbuild.Built, kind: OptionKind) -> Iterator[Toa]:
    if impl == "kmod":
        with kbuild.loaded(machine, built, kmod_params(kind)):
            yield Toa("kmod", built, {"kind": "kmod", "module": built.name})
        return
    with bpf_attached(machine, built, ALLOW, kind) as state:
        yield Toa("bpf", built, state)


@pytest.fixture
def toa(request: pytest.FixtureRequest, vm: VM, toa_impl: str,
        toa_kind: OptionKind) -> Iterator[Toa]:
    """The TOA under test, active for this test and reading `toa_kind`: the module loaded
    (rmmod'ed after), or the BPF programs attached to a fresh cgroup with ALLOW as
    allowlist (detached after)."""
    built = request.getfixturevalue("toa_ko" if toa_impl == "kmod" else "toa_bpf_obj")
    with _active(vm, toa_impl, built, toa_kind) as t:
        yield t


@pytest.fixture
def peer_toa(request: pytest.FixtureRequest, peer: VM, toa_impl: str, toa_src: Path,
             toa_kind: OptionKind) -> Iterator[Toa]:
    """`toa` on the peer VM, for the peer's kernel: the backend of a multi_vm case."""
    kernel = peer.cfg.kernel
    built = _ko(request, toa_src, kernel) if toa_impl == "kmod" else _bpf_obj(request, kernel)
    with _active(peer, toa_impl, built, toa_kind) as t:
        yield t


@pytest.fixture
def toa_net(vm: VM, topo, toa: Toa) -> ToaNet:
    """TOA active, backend and client namespaces built."""
    topo(topology())
    return ToaNet(vm, toa.impl)


@pytest.fixture
def toa_reference(pytestconfig: pytest.Config, toa_impl: str, toa_src: Path) -> bool:
    """True for bpf/toa and kmod/toa (or a modified copy, --toa-reference-src), whose
    counters and log lines knit documents; False for a module from --toa-src."""
    return (toa_impl == "bpf" or toa_src == REFERENCE_SRC
            or pytestconfig.getoption("toa_reference_src", default=None) is not None)


@pytest.fixture
def toa_needs(toa_net: ToaNet, toa_reference: bool, toa_src: Path) -> Callable[..., None]:
    """needs(*rows, entries=False): the counter rows (and live-entries count) a bookkeeping
    case reads, probed in the guest. A --toa-src module without them skips that case,
    naming what it lacks; for kmod/toa and bpf/toa it is a failure."""
    def needs(*rows: str, entries: bool = False) -> None:
        lack = toa_net.lacks(*rows, entries=entries)
        if lack and not toa_reference:
            pytest.skip(f"--toa-src {toa_src}: no {'; no '.join(lack)}")
        assert not lack, f"the TOA under test has no {'; no '.join(lack)}"
    return needs


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
