"""Fixtures of the TOA suite: the module built for the test's kernel (on the host, cached
under $KNIT_CACHE/kmod), loaded in the guest for one test, and the client/backend netns.

`--toa-src PATH` points the suite at another TOA module source (a vendor's). It is read
when suites/toa is on the command line (pytest loads this conftest at start-up then).
"""

from __future__ import annotations

import compileall
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.toa_net import SOCKOPS_TOA_ADDR, ToaNet, topology
from knit import kbuild
from knit.kernels import Kernel
from knit.vm import VM

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SRC = ROOT / "kmod" / "toa"
_BUILDS: dict[str, dict] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("knit").addoption(
        "--toa-src", metavar="PATH", default=None,
        help="TOA module source dir to build and test instead of kmod/toa (a vendor's)")


@pytest.fixture(scope="session", autouse=True)
def _guest_bytecode() -> None:
    """Byte-compile the guest-side modules on the host: each vm.call is a fresh fork that
    imports them, and compiling under TCG costs ~0.3 s a module (PYTHONDONTWRITEBYTECODE is
    set for the agent, so the guest never keeps its own .pyc)."""
    for d in (ROOT / "fixtures", ROOT / "knit" / "guest"):
        compileall.compile_dir(d, quiet=1, maxlevels=0)


@pytest.fixture(scope="session")
def toa_src(pytestconfig: pytest.Config) -> Path:
    src = pytestconfig.getoption("toa_src", default=None)
    return Path(src).expanduser().resolve() if src else REFERENCE_SRC


@pytest.fixture
def toa_ko(request: pytest.FixtureRequest, toa_src: Path, knit_kernel: Kernel) -> kbuild.Built:
    """toa.ko for this kernel, built on the host (or taken from the cache)."""
    try:
        built = kbuild.build_module(toa_src, knit_kernel)
    except kbuild.BuildError as e:
        pytest.fail(str(e), pytrace=False)
    request.node.user_properties += [("toa_module", str(built.path)),
                                     ("toa_build_s", built.seconds),
                                     ("toa_build_cached", built.cached)]
    return built


@pytest.fixture
def toa(vm: VM, toa_ko: kbuild.Built) -> Iterator[kbuild.Built]:
    """The module loaded (insmod of the host path) for this test, rmmod'ed after it."""
    with kbuild.loaded(vm, toa_ko):
        yield toa_ko


@pytest.fixture
def toa_net(vm: VM, topo, toa: kbuild.Built) -> ToaNet:
    """Module loaded, backend and client namespaces built."""
    topo(topology())
    return ToaNet(vm, toa.name)


@pytest.fixture
def reference_only(toa_src: Path) -> None:
    """Cases that read the reference module's `entries` parameter or exact stats rows."""
    if toa_src != REFERENCE_SRC:
        pytest.skip(f"needs kmod/toa's entries parameter and toa_stats rows; "
                    f"--toa-src {toa_src} may not have them")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the controller under xdist too: the properties travel with the report.
    props = dict(report.user_properties)
    if report.when == "setup" and "toa_build_s" in props:
        _BUILDS.setdefault(props.get("kernel_version", "?"), props)


def pytest_terminal_summary(terminalreporter) -> None:
    for version, p in sorted(_BUILDS.items()):
        how = "from the cache, built earlier in" if p["toa_build_cached"] else "built in"
        terminalreporter.write_line(f"toa: {p['toa_module']} for {version}: "
                                    f"{how} {p['toa_build_s']:.1f} s")


@pytest.fixture
def toa_sockops(vm: VM) -> Iterator[dict]:
    """bpf/toa_sockops compiled on the host, attached in the guest to a fresh cgroup v2;
    its option carries SOCKOPS_TOA_ADDR. Yields the guest-side state (cgroup path...)."""
    try:
        obj = kbuild.build_bpf(ROOT / "bpf" / "toa_sockops" / "toa_sockops.bpf.c")
    except kbuild.BuildError as e:
        pytest.fail(str(e), pytrace=False)
    state = vm.call("fixtures.toa_bpf:attach", obj=str(obj.path), addr=SOCKOPS_TOA_ADDR)
    yield state
    if not vm.dirty:
        vm.call("fixtures.toa_bpf:detach", state=state)
