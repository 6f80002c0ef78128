"""pytest wiring: options, markers, kernel parametrization, fixtures and health hooks.

The logic lives in the library (pool, vm, health, requirements, artifacts); this module
only connects it to pytest.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import pytest

from knit import accel, artifacts, cpulock, health, kernels, requirements, rootfs
from knit.errors import BootError, KnitError
from knit.pool import VMPool, key
from knit.topology import Topology
from knit.vm import VM


class VmInUse(NamedTuple):
    """What a test's `vm` fixture leaves in the item's stash for the hooks."""

    key: str          # the pool's key (kernel, userspace): its baseline state
    vm: VM
    pool: VMPool


VM_KEY = pytest.StashKey[VmInUse]()
NODES_KEY = pytest.StashKey[list[str]]()
ART_KEY = pytest.StashKey[Path]()
USERSPACE_KEY = pytest.StashKey[str]()
# The kernel faults the health check found for this item (a finding, not a leftover):
# the flake-retry loop never retries them away and the report keeps their fingerprints.
FAULTS_KEY = pytest.StashKey[list[health.Fault]]()
CALL_END_KEY = pytest.StashKey[float]()  # host monotonic time the test's call ended
# After a test the kernel log must be quiet this long (scaled by accel, so 1 s under TCG)
# before it is read: a report from deferred work (a timer, a workqueue) lands in it.
SETTLE_S = 0.2
SETTLE_LIMIT_S = 6.0  # scaled: at most 30 s under TCG for a log that never goes quiet


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("knit", "knit kernel test harness")
    g.addoption("--kernel", action="append", default=[], metavar="NAME",
                help="kernel to test (repeatable): debian-6.1, debian-6.12, path:/bzImage")
    g.addoption("--userspace", action="append", default=[], metavar="RELEASE",
                choices=[*rootfs.RELEASES, "host"],
                help=f"guest userspace (repeatable): {', '.join(rootfs.RELEASES)} (a root "
                     f"tree knit builds; default {rootfs.DEFAULT}) or host (the host's /)")
    g.addoption("--strict-requirements", action="store_true",
                help="fail, instead of skip, tests whose kernel requirements are missing")
    g.addoption("--knit-artifacts", default="artifacts", metavar="DIR",
                help="where failed tests leave their artifacts (default: ./artifacts)")
    g.addoption("--keep-artifacts", action="store_true",
                help="keep the artifacts folder of passing tests too")
    g.addoption("--accel", choices=["kvm", "tcg"], default=os.environ.get("KNIT_ACCEL"),
                help="force the accelerator (default: probe KVM once, else TCG)")
    g.addoption("--nightly", action="store_true",
                help="also run tests marked slow or nightly (CI leaves them out)")
    g.addoption("--keep-vm", action="store_true",
                help="leave the VM of a failed test running (topology included) and print "
                     "how to attach to it")
    g.addoption("--gdb", action="store_true",
                help="start qemu's gdb stub in each VM (boots with nokaslr) and print the gdb "
                     "command; use with -n 0")
    g.addoption("--vm-cpus", type=int, default=2)
    g.addoption("--vm-memory", default="1G")


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "kconfig(*options): kernel config options the test needs (=y or =m)",
        "kernel(min=None, max=None): kernel version range the test needs",
        "kills_vm: the test deliberately kills its VM; skip the health checks",
        "expect_kernel_fault(pattern): the test must make the kernel log a matching fault",
        "slow: long cases that CI leaves out; ci/nightly.sh runs them",
        "nightly: needs the nightly matrix (second kernel, source builds)",
        "exclusive(reason): needs the host's CPUs to itself; under -n the other workers "
        "start nothing new while it runs",
    ):
        config.addinivalue_line("markers", line)
    cap_workers(config)


def cap_workers(config: pytest.Config) -> None:
    """`-n` above the guest slots the host carries runs that many workers, not more: a
    worker beyond them would boot a guest only to wait for a slot (`-n 4` on 2 TCG cores
    took 2.65x the wall time of `-n 2` before slots, and extra boots cost even with them).
    KNIT_GUEST_SLOTS raises the limit."""
    tx = getattr(config.option, "tx", None) or []
    if hasattr(config, "workerinput") or not tx or set(tx) != {"popen"}:
        return
    name = config.getoption("accel") or accel.cached() or "tcg"
    slots = cpulock.slot_count(name)
    if len(tx) > slots:
        config.option.tx = tx[:slots]
        config.option.numprocesses = slots
        why = ("KNIT_GUEST_SLOTS" if os.environ.get("KNIT_GUEST_SLOTS") else
               f"{os.cpu_count()} CPUs under {name}; KNIT_GUEST_SLOTS=N changes it")
        print(f"knit: -n {len(tx)} runs {slots} workers, one per guest slot ({why})",
              file=sys.stderr)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out `slow` tests unless --nightly or -m asks for them, and `nightly` ones when
    pytest runs its default testpaths (what CI runs); a path named explicitly runs them."""
    if config.getoption("nightly") or config.getoption("markexpr"):
        return
    default_run = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    keep, drop = [], []
    for item in items:
        heavy = item.get_closest_marker("slow") or (
            default_run and item.get_closest_marker("nightly"))
        (drop if heavy else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def artifacts_root(config: pytest.Config) -> Path:
    """--knit-artifacts, absolute: every worker and the guests see the same folder."""
    return Path(config.getoption("knit_artifacts")).resolve()


def kernel_names(config: pytest.Config) -> list[str]:
    return config.getoption("kernel") or [kernels.default_kernel()]


def userspace_names(config: pytest.Config) -> list[str]:
    return list(dict.fromkeys(config.getoption("userspace"))) or [rootfs.DEFAULT]


def pytest_report_header(config: pytest.Config) -> str:
    return (f"knit: kernels {', '.join(kernel_names(config))}; userspace "
            f"{', '.join(userspace_names(config))}; accel "
            + (config.getoption("accel") or "auto (KVM probe, else TCG)"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per (kernel, userspace); ids name the userspace only when several are
    asked for, so a single-userspace run keeps the ids (and flake history) it had."""
    if "knit_kernel" in metafunc.fixturenames:
        names = kernel_names(metafunc.config)
        spaces = userspace_names(metafunc.config)
        params = [(k, u) for k in names for u in spaces]
        ids = [k if len(spaces) == 1 else f"{k}-{u}" for k, u in params]
        metafunc.parametrize("knit_kernel", params, ids=ids, indirect=True)


# -- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def knit_pool(request: pytest.FixtureRequest) -> Iterator[VMPool]:
    cfg = request.config
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    art = artifacts_root(cfg)
    art.mkdir(parents=True, exist_ok=True)
    pool = VMPool(workdir=art / "vms" / worker, rwdirs=(art,), rodirs=(kernels.cache_dir(),),
                  accel_name=cfg.getoption("accel"), cpus=cfg.getoption("vm_cpus"),
                  memory=cfg.getoption("vm_memory"), gdb=cfg.getoption("gdb"),
                  boot_log=art / "boots.jsonl")
    yield pool
    pool.close()
    if pool.final_faults:
        # Reported on this worker's last test (pytest's place for session teardown errors).
        raise KernelFault("kernel fault after the last test's check, found at session end "
                          + "; ".join(f"on {n}: {f}" for n, f in pool.final_faults),
                          [f for _, f in pool.final_faults])


@pytest.fixture
def knit_kernel(request: pytest.FixtureRequest, knit_pool: VMPool) -> kernels.Kernel:
    """The kernel this test item runs on (parametrized by --kernel and --userspace)."""
    name, userspace = request.param
    try:
        k = knit_pool.kernel(name)
        knit_pool.userspace(userspace)
    except KnitError as e:
        pytest.fail(str(e), pytrace=False)
    request.node.stash[USERSPACE_KEY] = userspace
    request.node.user_properties += [("kernel", k.name), ("kernel_version", k.version),
                                     ("userspace", userspace)]
    problems = []
    for m in request.node.iter_markers("kconfig"):
        problems += requirements.missing_kconfig(k, m.args)
    for m in request.node.iter_markers("kernel"):
        p = requirements.version_problem(k, **m.kwargs)
        if p:
            problems.append(p)
    if problems:
        msg = "; ".join(problems)
        if request.config.getoption("strict_requirements"):
            pytest.fail(f"requirement missing (--strict-requirements): {msg}", pytrace=False)
        pytest.skip(msg)
    return k


@pytest.fixture
def vm(request: pytest.FixtureRequest, knit_kernel: kernels.Kernel,
       knit_pool: VMPool) -> Iterator[VM]:
    """The warm VM of this worker for this test's kernel; health-checked after the test."""
    userspace = request.node.stash[USERSPACE_KEY]
    try:
        machine = knit_pool.get(knit_kernel.name, userspace)
    except BootError as e:
        pytest.fail(f"{e}\n--- console tail ---\n{e.console_tail}", pytrace=False)
    name = key(knit_kernel.name, userspace)
    request.node.stash[VM_KEY] = VmInUse(name, machine, knit_pool)
    request.node.user_properties.append(("accel", machine.cfg.accel))
    boot = knit_pool.boot_faults.pop(name, [])
    if boot:  # the first test on a VM answers for its boot: no window goes unread
        request.node.stash.setdefault(FAULTS_KEY, []).extend(boot)
        raise KernelFault(f"kernel fault during the boot of {name}, before this test ran: "
                          + "\n\n".join(str(f) for f in boot), boot)
    yield machine
    _check_after(request.node)


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """This test's artifacts folder, writable from the guest too (pcaps go here)."""
    root = artifacts_root(request.config)
    d = artifacts.test_dir(root, request.node.nodeid)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    request.node.stash[ART_KEY] = d
    return d


@pytest.fixture
def topo(request: pytest.FixtureRequest, vm: VM) -> Iterator[Callable[[Topology], Topology]]:
    """Factory: topo(Topology) builds it in the guest; teardown removes it and checks."""
    built: list[Topology] = []
    request.node.stash[NODES_KEY] = []

    def build(t: Topology) -> Topology:
        vm.call("knit.guest.netns:build", topology=t.to_dict())
        built.append(t)
        request.node.stash[NODES_KEY] += t.names
        return t

    yield build
    if vm.dirty:
        return
    for t in reversed(built):
        r = vm.call("knit.guest.netns:destroy", names=t.names)
        if r["left"]:
            pytest.fail(f"topology teardown left netns {r['left']}", pytrace=False)


@pytest.fixture
def cleanup(request: pytest.FixtureRequest) -> Iterator[ExitStack]:
    """knit's `defer`: register undo where a thing is made, `cleanup.callback(fn, *args)` or
    `cleanup.enter_context(cm)`; it runs last-in first-out when the test ends, pass or fail.
    It runs before the test's topology is removed and the VM health-checked: a test that
    uses `topo` or `vm` has them set up first, so they are torn down after."""
    for name in ("topo", "vm"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
    with ExitStack() as stack:
        yield stack


# -- health and artifacts ----------------------------------------------------------------

class KernelFault(AssertionError):
    """The kernel logged an Oops/BUG/WARNING/... during the test (`faults`), or state was
    left behind (no `faults`)."""

    def __init__(self, message: str, faults: list[health.Fault] | None = None) -> None:
        super().__init__(message)
        self.faults = faults or []


def _using_vm(item: pytest.Item) -> VmInUse | None:
    entry = item.stash.get(VM_KEY, None)
    if entry is None or item.get_closest_marker("kills_vm") or entry.vm.dirty:
        return None
    return entry


def _check_kmsg(item: pytest.Item, when: str, extra: list[str] = ()) -> None:
    entry = _using_vm(item)
    if entry is None:
        return
    name, machine, pool = entry
    seq, lines = machine.kmsg(pool.kmsg_seq.get(name, -1))
    pool.kmsg_seq[name] = seq
    faults = health.scan([*lines, *extra])
    expected = item.get_closest_marker("expect_kernel_fault")
    if expected and when == "call":
        rx = re.compile(expected.args[0])
        if not any(rx.search(f.first_line) for f in faults):
            raise KernelFault(f"expected a kernel fault matching {expected.args[0]!r}; "
                              f"the health check found {len(faults)} other(s)")
        return
    if faults:
        machine.dirty = f"kernel fault: {faults[0].first_line.strip()}"
        item.stash.setdefault(FAULTS_KEY, []).extend(faults)
        raise KernelFault("\n\n".join(str(f) for f in faults), faults)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator:
    """Every test with a VM takes one of the host's guest slots (shared by all knit sessions on the
    host, so `-n` above what the CPUs carry, or two sessions at once, queue); under xdist it
    first holds the CPU lock (shared, or alone for `exclusive` ones)."""
    if "vm" not in getattr(item, "fixturenames", ()):
        return (yield)  # no guest of its own (unit tests, tests that run a nested session)
    alone = item.get_closest_marker("exclusive") is not None
    count = cpulock.slot_count(item.config.getoption("accel") or accel.cached())
    t0 = time.monotonic()
    turn = ExitStack()
    if "PYTEST_XDIST_WORKER" in os.environ:
        turn.enter_context(cpulock.hold(artifacts_root(item.config) / "vms", alone))
    with turn, cpulock.slot(cpulock.slot_dir(), count) as waited:
        wait = time.monotonic() - t0
        if alone or waited >= 0.5:
            item.user_properties.append(("cpu_wait_s", round(wait, 1)))
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        item.stash[CALL_END_KEY] = time.monotonic()
        _check_kmsg(item, "call")  # a fault outranks the test's own failure; both are shown


def settle_window(machine: VM) -> float:
    """How long the kernel log must stay quiet after a test before it is read."""
    forced = os.environ.get("KNIT_SETTLE_S", "")
    return float(forced) if forced else machine.scaled(SETTLE_S)


def _settle(item: pytest.Item) -> list[str]:
    """Wait for the kernel to finish what the test started (netns dismantled, log quiet);
    returns kmemleak's report lines on kernels that have it."""
    entry = _using_vm(item)
    if entry is None:
        return []
    name, machine, pool = entry
    ended = item.stash.get(CALL_END_KEY, time.monotonic())
    r = machine.call("knit.guest.settle:settle", window=settle_window(machine),
                     elapsed=time.monotonic() - ended, after=pool.kmsg_seq.get(name, -1),
                     limit=machine.scaled(SETTLE_LIMIT_S), timeout=machine.scaled(60))
    return r["kmemleak"] or []


def _check_after(item: pytest.Item) -> None:
    """After the test's other fixtures are gone: let the kernel settle, then new faults
    (kernel log and kmemleak), then leftovers."""
    _check_kmsg(item, "teardown", _settle(item))
    entry = _using_vm(item)
    if entry is not None:
        name, machine, pool = entry
        left = health.leftovers(pool.baseline[name], machine.state())
        if left:
            machine.dirty = "test left state behind"  # the next test gets a fresh VM
            raise KernelFault("test left state behind: " + "; ".join(left))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    rep = yield
    entry = item.stash.get(VM_KEY, None)
    if rep.failed:
        item.stash[FAILED_KEY] = True
        if entry is not None:
            _on_failure(item, call, rep, entry.vm)
    if rep.when == "teardown" and not item.stash.get(FAILED_KEY, False) \
            and not item.config.getoption("keep_artifacts"):
        d = item.stash.get(ART_KEY, None)
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)
    return rep


def _on_failure(item: pytest.Item, call: pytest.CallInfo, rep: pytest.TestReport,
                machine: VM) -> None:
    if machine.dirty:
        rep.sections.append(("knit console tail", machine.console_tail()))
    if item.get_closest_marker("kills_vm") and rep.when == "call":
        return
    root = artifacts_root(item.config)
    dest = item.stash.get(ART_KEY, None) or artifacts.test_dir(root, item.nodeid)
    reason = str(call.excinfo.value).splitlines()[0] if call.excinfo else "failed"
    artifacts.collect(machine, dest, item.stash.get(NODES_KEY, []), f"{rep.when}: {reason}")
    rep.sections.append(("knit artifacts", str(dest)))
    if item.config.getoption("keep_vm") and not machine.dirty:
        hint = machine.keep()
        machine.dirty = "kept for debugging"  # later tests get a fresh VM
        rep.sections.append(("knit keep-vm", f"VM left running with its topology: {hint}"))


FAILED_KEY = pytest.StashKey[bool]()
