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
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import pytest

from knit import accel, artifacts, cpulock, health, kernels, requirements, rootfs
from knit.errors import BootError, KnitError
from knit.guest import wires
from knit.pool import VMPool, key, peer_key
from knit.topology import Topology, TopologyError
from knit.vm import VM


class VmInUse(NamedTuple):
    """What a test's `vm` fixture leaves in the item's stash for the hooks."""

    key: str          # the pool's key (kernel, userspace): its baseline state
    vm: VM
    pool: VMPool


VM_KEY = pytest.StashKey[VmInUse]()
PEER_KEY = pytest.StashKey[VmInUse]()   # a multi_vm test's second VM (`peer`)
NODES_KEY = pytest.StashKey[list[str]]()
PEER_NODES_KEY = pytest.StashKey[list[str]]()
PEER_NAME_KEY = pytest.StashKey[str]()
ART_KEY = pytest.StashKey[Path]()
FAILED_ATTEMPTS_KEY = pytest.StashKey[int]()  # of this item so far, under --flake-retries
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
    g.addoption("--peer-kernel", action="append", default=[], metavar="NAME",
                help="kernel of the second VM of multi_vm tests (repeatable; default: the "
                     "test's own kernel); ids show both: test_x[debian-6.12-debian-6.1]")
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
        "multi_vm: uses a second VM (the `peer` fixture, kernel from --peer-kernel)",
    ):
        config.addinivalue_line("markers", line)
    if not hasattr(config, "workerinput"):
        # One id per session, inherited by its xdist workers: boots.jsonl is shared by
        # every session on these artifacts (a concurrent or nested one too).
        os.environ["KNIT_SESSION"] = uuid.uuid4().hex[:12]
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
    """One item per (kernel, userspace), and per peer kernel for a test with a `peer`;
    ids name the userspace only when several are asked for, so a single-userspace run
    keeps the ids (and flake history) it had."""
    if "knit_kernel" in metafunc.fixturenames:
        names = kernel_names(metafunc.config)
        spaces = userspace_names(metafunc.config)
        if "peer" in metafunc.fixturenames:
            if metafunc.definition.get_closest_marker("multi_vm") is None:
                raise pytest.UsageError(f"{metafunc.definition.nodeid} uses `peer`: mark it "
                                        "@pytest.mark.multi_vm")
            peers = metafunc.config.getoption("peer_kernel")
            params = [(k, u, p) for k in names for p in (peers or [k]) for u in spaces]
            ids = [f"{k}-{p}" if len(spaces) == 1 else f"{k}-{p}-{u}" for k, u, p in params]
        else:
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
    # Wired when a multi_vm test was collected: each VM then has a pair's NICs, so the
    # test's own VM is the first half of its pair and only the peer boots for it.
    wired = any(i.get_closest_marker("multi_vm") for i in request.session.items)
    pool = VMPool(workdir=art / "vms" / worker, rwdirs=(art,), rodirs=(kernels.cache_dir(),),
                  accel_name=cfg.getoption("accel"), cpus=cfg.getoption("vm_cpus"),
                  memory=cfg.getoption("vm_memory"), gdb=cfg.getoption("gdb"),
                  boot_log=art / "boots.jsonl", wired=wired,
                  session=os.environ.get("KNIT_SESSION"))
    yield pool
    pool.close()
    if pool.final_faults:
        # Reported on this worker's last test (pytest's place for session teardown errors).
        raise KernelFault("kernel fault after the last test's check, found at session end "
                          + "; ".join(f"on {n}: {f}" for n, f in pool.final_faults),
                          [f for _, f in pool.final_faults])


@pytest.fixture
def knit_kernel(request: pytest.FixtureRequest, knit_pool: VMPool) -> kernels.Kernel:
    """The kernel this test item runs on (parametrized by --kernel and --userspace, and by
    --peer-kernel for a multi_vm test, whose peer kernel it stashes)."""
    name, userspace, *peer = request.param
    if peer:
        request.node.stash[PEER_NAME_KEY] = peer[0]
    try:
        k = knit_pool.kernel(name)
        knit_pool.userspace(userspace)
    except KnitError as e:
        pytest.fail(str(e), pytrace=False)
    request.node.stash[USERSPACE_KEY] = userspace
    request.node.user_properties += [("kernel", k.name), ("kernel_version", k.version),
                                     ("userspace", userspace)]
    _require(request, k)
    return k


def _require(request: pytest.FixtureRequest, k: kernels.Kernel, what: str = "") -> None:
    """Skip (or fail, --strict-requirements) when `k` lacks the test's kconfig/kernel."""
    problems = []
    for m in request.node.iter_markers("kconfig"):
        problems += requirements.missing_kconfig(k, m.args)
    for m in request.node.iter_markers("kernel"):
        p = requirements.version_problem(k, **m.kwargs)
        if p:
            problems.append(p)
    if problems:
        msg = what + "; ".join(problems)
        if request.config.getoption("strict_requirements"):
            pytest.fail(f"requirement missing (--strict-requirements): {msg}", pytrace=False)
        pytest.skip(msg)


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
    _boot_window(request.node, knit_pool, name)
    yield machine
    _check_after(request.node, VM_KEY)


def _boot_window(item: pytest.Item, pool: VMPool, name: str) -> None:
    """The first test on a VM answers for its boot: no window goes unread."""
    boot = pool.boot_faults.pop(name, [])
    if boot:
        item.stash.setdefault(FAULTS_KEY, []).extend(boot)
        raise KernelFault(f"kernel fault during the boot of {name}, before this test ran: "
                          + "\n\n".join(str(f) for f in boot), boot)


@pytest.fixture
def peer(request: pytest.FixtureRequest, vm: VM, knit_pool: VMPool) -> Iterator[VM]:
    """The second VM of a multi_vm test, on --peer-kernel (default: the test's kernel),
    wired to `vm` (topology nodes with vm="b" live here). Booted on first use and kept
    warm per worker; health-checked after the test like `vm`. A pair takes one guest
    slot: two pair tests each holding a slot and waiting for a second cannot deadlock."""
    name = request.node.stash.get(PEER_NAME_KEY, None)
    if name is None:
        pytest.fail("`peer` needs the knit_kernel parametrization (mark the test "
                    "multi_vm and let knit parametrize it)", pytrace=False)
    userspace = request.node.stash[USERSPACE_KEY]
    try:
        k = knit_pool.kernel(name)
    except KnitError as e:
        pytest.fail(str(e), pytrace=False)
    request.node.user_properties += [("peer_kernel", k.name), ("peer_kernel_version", k.version)]
    _require(request, k, f"peer {k.name}: ")
    a_key = request.node.stash[VM_KEY].key
    try:
        machine = knit_pool.peer(a_key, name, userspace)
    except BootError as e:
        pytest.fail(f"peer {e}\n--- console tail ---\n{e.console_tail}", pytrace=False)
    request.node.stash[PEER_KEY] = VmInUse(peer_key(a_key), machine, knit_pool)
    _boot_window(request.node, knit_pool, peer_key(a_key))
    yield machine
    _check_after(request.node, PEER_KEY)


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """This test's artifacts folder, writable from the guest too (pcaps go here)."""
    d = artifacts.fresh_test_dir(artifacts_root(request.config), request.node.nodeid,
                                 request.node.stash.get(FAILED_ATTEMPTS_KEY, 0))
    request.node.stash[ART_KEY] = d
    return d


@pytest.fixture
def topo(request: pytest.FixtureRequest, vm: VM) -> Iterator[Callable[[Topology], Topology]]:
    """Factory: topo(Topology) builds it in the guest (each VM's nodes in that VM, for a
    multi_vm test); teardown removes it and checks."""
    built: list[Topology] = []
    # Set up before us, torn down after us: its health check sees our netns gone.
    machines = {"a": vm}
    if request.node.get_closest_marker("multi_vm") and "peer" in request.fixturenames:
        machines["b"] = request.getfixturevalue("peer")
    stash = {"a": NODES_KEY, "b": PEER_NODES_KEY}
    for v in machines:
        request.node.stash[stash[v]] = []

    def build(t: Topology) -> Topology:
        missing = [v for v in t.vms if v not in machines]
        if missing:
            raise TopologyError(f"nodes on VM {', '.join(missing)}: the test needs the "
                                "`peer` fixture and the multi_vm marker")
        if len(t.wires) > wires.COUNT:
            raise TopologyError(f"{len(t.wires)} links between VMs: a pair has "
                                f"{wires.COUNT} wires")
        for v in t.vms:
            part = t.part(v, wires.mac) if "b" in machines else t.to_dict()
            machines[v].call("knit.guest.netns:build", topology=part)
            request.node.stash[stash[v]] += t.nodes_on(v)
        built.append(t)
        return t

    yield build
    for t in reversed(built):
        for v in t.vms:
            if machines[v].dirty:
                continue
            r = machines[v].call("knit.guest.netns:destroy", names=t.nodes_on(v))
            if r["left"]:
                pytest.fail(f"topology teardown left netns {r['left']} on VM {v}",
                            pytrace=False)


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


def _using_vm(item: pytest.Item, which: pytest.StashKey[VmInUse] = VM_KEY) -> VmInUse | None:
    entry = item.stash.get(which, None)
    if entry is None or item.get_closest_marker("kills_vm") or entry.vm.dirty:
        return None
    return entry


def machines_of(item: pytest.Item) -> list[VmInUse]:
    """The VMs a test used: its own, and its peer for a multi_vm test."""
    return [e for k in (VM_KEY, PEER_KEY) if (e := item.stash.get(k, None)) is not None]


def _check_kmsg(item: pytest.Item, when: str,
                which: tuple[pytest.StashKey[VmInUse], ...] = (VM_KEY, PEER_KEY),
                extra: list[str] = ()) -> None:
    """New kernel log lines of each VM in `which` (and `extra`, kmemleak's report of a
    single one): a fault in either fails the test."""
    faults: list[health.Fault] = []
    shown: list[str] = []
    for k in which:
        entry = _using_vm(item, k)
        if entry is None:
            continue
        name, machine, pool = entry
        seq, lines = machine.kmsg(pool.kmsg_seq.get(name, -1))
        pool.kmsg_seq[name] = seq
        found = health.scan([*lines, *extra])
        if found and not (item.get_closest_marker("expect_kernel_fault") and when == "call"):
            machine.dirty = f"kernel fault: {found[0].first_line.strip()}"
        faults += found
        if found and k is PEER_KEY:
            shown.append(f"in the peer VM ({machine.cfg.kernel.name}):")
        shown += [str(f) for f in found]
    expected = item.get_closest_marker("expect_kernel_fault")
    if expected and when == "call":
        rx = re.compile(expected.args[0])
        if not any(rx.search(f.first_line) for f in faults):
            raise KernelFault(f"expected a kernel fault matching {expected.args[0]!r}; "
                              f"the health check found {len(faults)} other(s)")
        return
    if faults:
        item.stash.setdefault(FAULTS_KEY, []).extend(faults)
        raise KernelFault("\n\n".join(shown), faults)


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


def _settle(item: pytest.Item, which: pytest.StashKey[VmInUse] = VM_KEY) -> list[str]:
    """Wait for the kernel to finish what the test started (netns dismantled, log quiet);
    returns kmemleak's report lines on kernels that have it."""
    entry = _using_vm(item, which)
    if entry is None:
        return []
    name, machine, pool = entry
    ended = item.stash.get(CALL_END_KEY, time.monotonic())
    r = machine.call("knit.guest.settle:settle", window=settle_window(machine),
                     elapsed=time.monotonic() - ended, after=pool.kmsg_seq.get(name, -1),
                     limit=machine.scaled(SETTLE_LIMIT_S), timeout=machine.scaled(60))
    return r["kmemleak"] or []


def _check_after(item: pytest.Item, which: pytest.StashKey[VmInUse] = VM_KEY) -> None:
    """After the test's other fixtures are gone: let one VM's kernel settle, then its new
    faults (kernel log and kmemleak), then its leftovers."""
    _check_kmsg(item, "teardown", (which,), _settle(item, which))
    entry = _using_vm(item, which)
    if entry is not None:
        name, machine, pool = entry
        left = health.leftovers(pool.baseline[name], machine.state(),
                                machine.resident_modules)
        if left:
            machine.dirty = "test left state behind"  # the next test gets a fresh VM
            raise KernelFault("test left state behind: " + "; ".join(left))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    rep = yield
    if rep.failed:
        item.stash[FAILED_KEY] = True
        for which, entry in zip((VM_KEY, PEER_KEY), (item.stash.get(VM_KEY, None),
                                                     item.stash.get(PEER_KEY, None)),
                                strict=True):
            if entry is not None:
                _on_failure(item, call, rep, entry.vm, which is PEER_KEY)
    if rep.when == "teardown" and not item.stash.get(FAILED_KEY, False) \
            and not item.config.getoption("keep_artifacts"):
        d = item.stash.get(ART_KEY, None)
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)
    return rep


def _on_failure(item: pytest.Item, call: pytest.CallInfo, rep: pytest.TestReport,
                machine: VM, is_peer: bool = False) -> None:
    """Console tail and artifacts of one VM; a peer's go to the `peer/` subfolder."""
    label = " (peer)" if is_peer else ""
    if machine.dirty:
        rep.sections.append((f"knit console tail{label}", machine.console_tail()))
    if item.get_closest_marker("kills_vm") and rep.when == "call":
        return
    root = artifacts_root(item.config)
    dest = item.stash.get(ART_KEY, None) or artifacts.test_dir(root, item.nodeid)
    if is_peer:
        dest = dest / "peer"
    reason = str(call.excinfo.value).splitlines()[0] if call.excinfo else "failed"
    nodes = item.stash.get(PEER_NODES_KEY if is_peer else NODES_KEY, [])
    artifacts.collect(machine, dest, nodes, f"{rep.when}: {reason}")
    if not is_peer:
        rep.sections.append(("knit artifacts", str(dest)))
    if item.config.getoption("keep_vm") and not machine.dirty:
        hint = machine.keep()
        machine.dirty = "kept for debugging"  # later tests get a fresh VM
        rep.sections.append((f"knit keep-vm{label}",
                             f"VM left running with its topology: {hint}"))


FAILED_KEY = pytest.StashKey[bool]()
