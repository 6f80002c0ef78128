"""Run bcc tools in a guest and get typed events back.

    with tools.trace(vm, knit_kernel, "tcptracer", "libbpf", ["-p", "42"]) as tr:
        ...traffic...
        tr.wait(lambda evs: len(evs) >= 3, vm.scaled(10), "3 events")
    tr.events                       # parsed after the tool was stopped with SIGINT

Two variants of each tool (Debian bookworm, both bcc 0.26):
  * "libbpf": libbpf-tools' CO-RE binaries /usr/sbin/<tool>; need the kernel's BTF and a
    mounted tracefs; they block-buffer stdout into a pipe, so they run under `stdbuf -oL`.
  * "python": bcc's /usr/sbin/<tool>-bpfcc, compiled by clang at start-up against the
    kernel's headers (minutes under TCG). vng's guest /lib/modules/<v> has no usable
    build/source pair, so bcc gets BCC_KERNEL_SOURCE=<one merged header tree> built here on
    the host (the guest sees the cache at the same path). Run as `python3 -u`.
A tool counts as attached when it prints its header (or its "Tracing ..." banner, printed
after the probes are attached); it is always stopped with SIGINT, never SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knit import kernels, rootfs
from knit.chroot import ChrootError
from knit.kernels import Kernel, locked
from knit.rootfs import Userspace
from knit.vm import VM, Result, Spawned
from knit.wait import WaitTimeout, wait_until
from suites.bcc.lib import parsers

VARIANTS = ("libbpf", "python")
SBIN = Path("/usr/sbin")
GUEST_PYTHON = "/usr/bin/python3"   # Debian's python3-bpfcc lives in the system python

# What a tool prints once its probes are attached, per (tool, variant).
READY = {
    ("tcptracer", "libbpf"): r"^(TIME\(s\)\s+)?(UID\s+)?T\s+PID\s+COMM\s+IP\s+SADDR",
    ("tcptracer", "python"): r"^(TIME\(n?s\)\s*)?(T|TYPE)\s+PID\s+COMM\s+IP\s+SADDR",
    ("solisten", "libbpf"): r"^(TIME\s+)?PID\s+COMM\s+RET\s+BACKLOG",
    ("solisten", "python"): r"^PID\s+COMM\s+(NETNS\s+)?PROTO\s+BACKLOG",
    ("softirqs", "libbpf"): r"^Tracing soft irq event",
    ("softirqs", "python"): r"^Tracing soft irq event",
}

# Start-up deadlines per (tool, variant) before vm.scaled() scaling (x5 under TCG), from
# <knit-artifacts>/bcc-output/startup.jsonl on a 2-core host shared with other engineers'
# VMs (1-min loadavg 2.5-10), 2026-11-23. libbpf-tools attach in 0.7-3.7 s (6.1, 6.12). bcc
# python compiles with clang in the guest, so its start grows with the host's load; on
# 6.1: softirqs 19-121 s, solisten 164-238 s, tcptracer 142 s at loadavg 2.5, 200-335 s
# at 5-6.5, 650 s at 8.5-9 (its program is the largest). Deadlines: libbpf 10x its slowest
# start; python ~1.8x tcptracer's slowest (a hung compile costs 20 min, in nightly only).
READY_S = {
    ("tcptracer", "libbpf"): 8.0, ("solisten", "libbpf"): 8.0, ("softirqs", "libbpf"): 8.0,
    ("tcptracer", "python"): 240.0, ("solisten", "python"): 240.0,
    ("softirqs", "python"): 100.0,
}
PROBE_S = 120.0   # host seconds (x3 allowed on a loaded host)
TAIL_CHARS = 600  # of a tool's output, in a timed-out wait's message

# A minimal bcc program that pulls in what the tools include (net/sock.h and bcc's
# helpers): if this does not compile against a kernel's headers, no bcc python tool will.
PROBE_PROGRAM = ("#include <net/sock.h>\n"
                 "int knit_probe(struct pt_regs *ctx) {\n"
                 "  struct sock *sk = (struct sock *)PT_REGS_PARM1(ctx);\n"
                 "  return sk->__sk_common.skc_family;\n}\n")
PROBE_CODE = "import sys\nfrom bcc import BPF\nBPF(text=sys.argv[1])\nprint('compiled')\n"


HOST = rootfs.HOST


def binary(tool: str, variant: str, us: Userspace = HOST) -> Path:
    """The tool's path in the guest: Debian 13 renamed libbpf-tools' `tcptracer` to
    `tcptracer-libbpf`, so look for both there."""
    if variant == "python":
        return SBIN / f"{tool}-bpfcc"
    return next((SBIN / n for n in (tool, f"{tool}-libbpf") if us.path(SBIN / n).exists()),
                SBIN / tool)


def installed(tool: str, variant: str, us: Userspace = HOST) -> bool:
    return us.path(binary(tool, variant, us)).exists()


def _missing(tool: str, variant: str, us: Userspace) -> str:
    pkg = "libbpf-tools" if variant == "libbpf" else "bpfcc-tools"
    return (f"{binary(tool, variant)} missing in the {us.name} userspace: add {pkg} to "
            "knit.rootfs.PACKAGES")


def command(tool: str, variant: str, args: Sequence[str] = (),
            headers: Path | None = None, us: Userspace = HOST) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment that run `tool` line-buffered."""
    if variant == "libbpf":
        return ["stdbuf", "-oL", str(binary(tool, variant, us)), *args], {}
    env = {"PYTHONUNBUFFERED": "1"}
    if headers is not None:
        env["BCC_KERNEL_SOURCE"] = str(headers)
    return [GUEST_PYTHON, "-u", str(binary(tool, variant)), *args], env


# -- host side: versions, the merged header tree, variant availability --------------------

def package_version(pkg: str, us: Userspace = HOST) -> str:
    """The Debian version of `pkg` in the guest's userspace, e.g. 0.31.0+ds-7."""
    return us.package_version(pkg)


def bcc_version(us: Userspace = HOST) -> str:
    """bcc's upstream version, e.g. '0.31' (python3-bpfcc 0.31.0+ds-7)."""
    v = package_version("python3-bpfcc", us)
    m = re.match(r"(\d+\.\d+)", v)
    return m.group(1) if m else v or "(not installed)"


def common_headers(headers: Path) -> Path:
    """The linux-headers-<v>-common tree that Debian's arch headers include by absolute
    path (`include /usr/src/linux-headers-<v>-common/Makefile`), found beside `headers`;
    for a build tree, the source tree its Makefile includes."""
    mk = (headers / "Makefile").read_text(errors="replace")
    m = re.search(r"/usr/src/(linux-headers-\S+?)/Makefile", mk)
    if m and (headers.parent / m.group(1)).is_dir():
        return headers.parent / m.group(1)
    found = sorted(headers.parent.glob("linux-headers-*-common*"))
    if found:
        return found[0]
    # A source-built kernel's O= tree includes its source tree's Makefile the same way.
    m = re.search(r"^include (/\S+)/Makefile$", mk, re.M)
    if m and (Path(m.group(1)) / "include/linux").is_dir():
        return Path(m.group(1))
    raise FileNotFoundError(f"no linux-headers-*-common beside {headers}, and it is not "
                            "a kernel build tree")


def bcc_headers(k: Kernel) -> Path:
    """One merged header tree for BCC_KERNEL_SOURCE: symlinks to the -common headers, then
    the arch headers over them (what worked in DESIGN.md). Built once per kernel version
    under $KNIT_CACHE/bcc-headers/<v>/, file-locked against parallel workers."""
    if k.headers is None or not k.headers.is_dir():
        raise FileNotFoundError(f"no linux-headers for {k.name} ({k.version})")
    base = kernels.cache_dir() / "bcc-headers" / k.version
    tree, done = base / "tree", base / "complete"
    with locked(base.parent / f".{k.version}.lock"):
        if done.exists():
            return tree
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        common = common_headers(k.headers)
        for extra, src in (([], common), (["--remove-destination"], k.headers)):
            subprocess.run(["cp", "-rs", *extra, f"{src.resolve()}/.", str(tree)], check=True,
                           capture_output=True, timeout=600)
        done.write_text(json.dumps({"common": str(common), "arch": str(k.headers)}) + "\n")
    return tree


def libbpf_problem(k: Kernel, tool: str, us: Userspace = HOST) -> str | None:
    """Why the libbpf-tools variant cannot run on `k`, or None."""
    if not installed(tool, "libbpf", us):
        return _missing(tool, "libbpf", us)
    if k.config and k.config.get("CONFIG_DEBUG_INFO_BTF") != "y":
        return f"CONFIG_DEBUG_INFO_BTF not set in {k.name}: libbpf-tools need the kernel BTF"
    return None


def _compile_errors(stderr: str) -> list[str]:
    """clang's `error:` lines."""
    return [ln.strip() for ln in stderr.splitlines() if "error:" in ln]


def _culprits(errors: list[str]) -> list[str]:
    """The types or names the errors are about: 'struct bpf_wq', unknown type names."""
    names: list[str] = []
    for e in errors:
        for n in re.findall(r"'(?:struct|enum|union) (\w+)'|(?:type name|identifier) '(\w+)'",
                            e):
            n = n[0] or n[1]
            if n not in names:
                names.append(n)
    return names


def python_problem(k: Kernel, tool: str, us: Userspace = HOST) -> str | None:
    """Why bcc's python variant cannot run on `k`, or None. bcc's compile depends only on
    bcc and the headers, not on the running kernel, so the probe compiles on the host (20-30 s
    there; minutes in a TCG guest) in the guest's userspace, once per (bcc version, kernel);
    the verdict is cached beside the merged headers. A wrong verdict shows at the tool's
    own compile in the guest."""
    if not installed(tool, "python", us):
        return _missing(tool, "python", us)
    try:
        headers = bcc_headers(k)
    except (OSError, subprocess.SubprocessError) as e:
        return f"no kernel headers for bcc on {k.name}: {e}"
    bcc = bcc_version(us)
    cache = headers.parent / f"probe-bcc{package_version('python3-bpfcc', us)}.json"
    with locked(headers.parent / ".probe.lock"):
        if cache.exists():
            verdict = json.loads(cache.read_text())
        else:
            t0 = time.monotonic()
            try:
                r = us.run([GUEST_PYTHON, "-c", PROBE_CODE, PROBE_PROGRAM],
                           ro=(kernels.cache_dir(),), timeout=PROBE_S * 3,
                           env={"PATH": "/usr/bin:/bin", "LC_ALL": "C",
                                "BCC_KERNEL_SOURCE": str(headers)})
            except subprocess.TimeoutExpired:  # not a verdict on the headers: not cached
                return f"bcc {bcc} compile probe timed out after {PROBE_S * 3:.0f}s"
            except ChrootError:  # no probe here: the tool's own compile in the guest tells
                return None
            verdict = {"ok": r.returncode == 0 and "compiled" in r.stdout,
                       "errors": _compile_errors(r.stdout)[:40],
                       "stderr_tail": r.stdout[-4000:],
                       "seconds": round(time.monotonic() - t0, 1), "kernel": k.version,
                       "bcc": package_version("python3-bpfcc", us),
                       "where": f"host, {us.name} userspace",
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            cache.write_text(json.dumps(verdict, indent=2) + "\n")
    if verdict["ok"]:
        return None
    names = _culprits(verdict["errors"])
    what = f" (incomplete or unknown: {', '.join(names[:4])})" if names else ""
    first = verdict["errors"][0] if verdict["errors"] else verdict["stderr_tail"][-300:]
    return (f"bcc {bcc} cannot compile against {k.version} headers{what}: {first} "
            f"[{len(verdict['errors'])} errors; {cache}]")


def problem(k: Kernel, tool: str, variant: str, us: Userspace = HOST) -> str | None:
    """Why `tool` of `variant` cannot run on kernel `k` in userspace `us`, or None."""
    return libbpf_problem(k, tool, us) if variant == "libbpf" else python_problem(k, tool, us)


# -- guest side ----------------------------------------------------------------------------

_tracing_ready: set[str] = set()


def ensure_tracing(vm: VM) -> None:
    """Mount tracefs and debugfs in the guest if vng did not (the tools need them).
    Mounts are not leftovers for the health check (netns, modules, sysctls only)."""
    if vm.boot_id in _tracing_ready:
        return
    mounts = vm.run(["cat", "/proc/mounts"]).stdout
    for fstype, where in (("debugfs", "/sys/kernel/debug"), ("tracefs", "/sys/kernel/tracing")):
        if not re.search(rf"^\S+ {re.escape(where)} {fstype} ", mounts, re.M):
            vm.run(["mount", "-t", fstype, "nodev", where])
    _tracing_ready.add(vm.boot_id)


@dataclass
class Trace:
    """A running (then stopped) tool. `events` are parsed from its stdout."""

    tool: str
    variant: str
    argv: list[str]
    kernel: str
    env: dict[str, str] = field(default_factory=dict)  # BCC_KERNEL_SOURCE for python
    startup_s: float = 0.0
    host_load: list[float] = field(default_factory=list)  # 1/5/15-min loadavg at attach
    proc: Spawned | None = None
    result: Result | None = None
    userspace: Userspace = HOST
    _parse: Callable[[str], list[Any]] = field(default=lambda s: [], repr=False)

    @property
    def stdout(self) -> str:
        if self.result is not None:
            return self.result.stdout
        return self.proc.output().stdout if self.proc else ""

    @property
    def events(self) -> list[Any]:
        return self._parse(self.stdout)

    def wait(self, done: Callable[[list[Any]], bool], timeout: float, what: str = "",
             poll: float = 0.5) -> list[Any]:
        """Poll the running tool's output until `done(events)` and return the events. On
        timeout raise WaitTimeout naming `what`, the events seen and the output's tail (a
        window meant to pass without an event is a plain sleep, said so at the call)."""
        try:
            return wait_until(lambda: self.events, done, timeout, what or "events", poll)
        except WaitTimeout as e:
            tail = self.stdout[-TAIL_CHARS:]
            raise WaitTimeout(
                f"{self.tool} ({self.variant}): {what or 'awaited events'} not within "
                f"{timeout:.1f}s; {len(e.last)} events seen, last {e.last[-3:]!r}; "
                f"output tail: {tail!r}", e.last) from None


def record(tr: Trace, folder: Path, name: str, accel: str = "") -> Path:
    """Save a stopped tool's raw output with a .meta.json (kernel, tool + version, command,
    date, start-up time) in `folder`, and append its start-up time to
    `folder`/startup.jsonl. Such files are how parser fixtures are captured."""
    folder.mkdir(parents=True, exist_ok=True)
    pkg = "libbpf-tools" if tr.variant == "libbpf" else "bpfcc-tools"
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta = {"kernel": tr.kernel, "tool": tr.tool, "variant": tr.variant,
            "tool_version": f"{pkg} {package_version(pkg, tr.userspace)} "
                            f"(bcc {bcc_version(tr.userspace)})",
            "userspace": tr.userspace.name,
            "command": tr.argv, "env": tr.env, "startup_s": round(tr.startup_s, 2), "date": date,
            "guest": f"{tr.kernel}, {accel.upper() or '?'} guest",
            "host_load": tr.host_load, "host_cpus": os.cpu_count()}
    if tr.result is not None:
        meta |= {"rc": tr.result.rc, "stderr": tr.result.stderr[-2000:]}
        (folder / f"{name}.txt").write_text(tr.result.stdout)
        (folder / f"{name}.txt.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    with open(folder / "startup.jsonl", "a") as f:
        f.write(json.dumps({k: meta[k] for k in ("tool", "variant", "kernel", "startup_s",
                                                 "host_load", "command", "date")}) + "\n")
    return folder / f"{name}.txt"


@contextmanager
def trace(vm: VM, k: Kernel, tool: str, variant: str, args: Sequence[str] = (),
          ns: str | None = None, ready_timeout: float | None = None) -> Iterator[Trace]:
    """Start `tool` in the guest, wait until it is attached, yield; stop it with SIGINT on
    exit. A start-up failure raises CmdFailed carrying the tool's output."""
    ensure_tracing(vm)
    headers = bcc_headers(k) if variant == "python" else None
    argv, env = command(tool, variant, args, headers, vm.cfg.userspace)
    tr = Trace(tool, variant, argv, k.version, env, userspace=vm.cfg.userspace,
               _parse=parsers.PARSERS[(tool, variant)])
    t0 = time.monotonic()
    with vm.spawn(argv, ns=ns, ready=READY[(tool, variant)], env=env,
                  ready_timeout=ready_timeout or vm.scaled(READY_S[(tool, variant)]),
                  stop_timeout=vm.scaled(20)) as proc:
        tr.startup_s, tr.proc = time.monotonic() - t0, proc
        tr.host_load = [round(x, 2) for x in os.getloadavg()]  # start-up times depend on it
        try:
            yield tr
        finally:
            tr.result = proc.stop(timeout=vm.scaled(20))  # SIGINT; python tools exit slowly


def run_once(vm: VM, k: Kernel, tool: str, variant: str, args: Sequence[str] = (),
             timeout: float | None = None) -> Result:
    """Run a tool that exits by itself (--ebpf, or softirqs with a count)."""
    ensure_tracing(vm)
    headers = bcc_headers(k) if variant == "python" else None
    argv, env = command(tool, variant, args, headers, vm.cfg.userspace)
    return vm.run(argv, env=env, timeout=timeout or vm.scaled(READY_S[(tool, variant)] + 30),
                  check=False)
