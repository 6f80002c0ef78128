"""Guest userspaces: root trees that knit builds with mmdebstrap from Debian's packages,
so a test's verdict depends on the kernel and the test, not on the host's distribution.

    $KNIT_CACHE/rootfs/<release>-<key>/root/          the tree vng boots with --root
    $KNIT_CACHE/rootfs/<release>-<key>/complete       written last (what went in, how long)

The key hashes the release, the package set and the Python wheels, so changing any of
them builds a new tree; an old one stays until removed. The tree doubles as the build root
for modules of kernels of its release: its gcc is the one the kernel was built with.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from knit import chroot
from knit.errors import KnitError
from knit.kernels import apt
from knit.kernels.cache import cache_dir, locked

RELEASES = ("trixie", "bookworm")
DEFAULT = "trixie"
FORMAT = 1   # bump when the way a tree is made changes
# What the suites run in the guest, and what builds modules there.
PACKAGES = (
    "python3", "iproute2", "iputils-ping", "bpfcc-tools", "python3-bpfcc", "libbpf-tools",
    "bpftool", "tcpdump", "iperf3", "mptcpd", "mptcpize", "iptables", "nftables", "ethtool",
    "kmod", "procps", "socat", "busybox-static", "mount", "util-linux", "file", "binutils",
    "netcat-openbsd", "coreutils", "gcc", "make", "libc6-dev", "libelf-dev", "dwarves",
    "bc", "xz-utils", "zstd",
)
WHEELS = ("scapy", "pyroute2")   # at the versions the host's venv resolved from pyproject


class RootfsError(KnitError):
    pass


Progress = Callable[[str], None]


def _stderr(m: str) -> None:
    print(m, file=sys.stderr)


def wheel_versions() -> dict[str, str]:
    try:
        return {w: metadata.version(w) for w in WHEELS}
    except metadata.PackageNotFoundError as e:
        raise RootfsError(f"{e} is not installed in knit's venv: run ./bootstrap.sh") from e


def key(release: str) -> str:
    blob = json.dumps([FORMAT, release, sorted(PACKAGES), wheel_versions()])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Userspace:
    """A guest root tree. `root` is None for the host's own / (vng's default)."""

    name: str
    root: Path | None

    @property
    def python(self) -> str:
        return "/usr/bin/python3"

    def path(self, guest_path: str | Path) -> Path:
        """Where a guest path lies on the host."""
        p = Path(guest_path)
        return p if self.root is None else self.root / str(p).lstrip("/")

    def package_version(self, pkg: str) -> str:
        admin = self.path("/var/lib/dpkg")
        p = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f=${Version}", pkg],
                           capture_output=True, text=True, timeout=30)
        return p.stdout.strip() if p.returncode == 0 else ""

    def run(self, argv: list[str], ro: tuple[Path, ...] = (), rw: tuple[Path, ...] = (),
            cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """Run argv on the host inside this userspace (merged stdout and stderr)."""
        if self.root is None:
            return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace", timeout=timeout)
        return chroot.run(self.root, argv, ro=ro, rw=rw, cwd=cwd, env=env, timeout=timeout)


HOST = Userspace("host", None)   # the host's own / (vng's default)


def tree_dir(release: str) -> Path:
    return cache_dir() / "rootfs" / f"{release}-{key(release)}"


def is_built(release: str) -> bool:
    return (tree_dir(release) / "complete").exists()


def get(name: str) -> Userspace:
    """The userspace `name` (a release, or 'host'), built if it is not yet."""
    if name == "host":
        return HOST
    quiet = is_built(name)   # a cached tree says nothing; a build shows its progress
    return Userspace(name, build(name, progress=(lambda m: None) if quiet else _stderr))


def _site_packages(root: Path) -> Path:
    libs = sorted(root.glob("usr/lib/python3.*"))
    if not libs:
        raise RootfsError(f"no python3 in {root}: the package set lost python3")
    return root / "usr" / "local" / "lib" / libs[-1].name / "dist-packages"


def _install_wheels(root: Path, tmp: Path, progress: Progress) -> dict[str, str]:
    """pip downloads the wheels on the host (its index and proxy settings apply); they
    are unpacked into the tree's site-packages and byte-compiled there by its python."""
    want = wheel_versions()
    dl = tmp / "wheels"
    progress(f"rootfs: downloading wheels {', '.join(f'{k}=={v}' for k, v in want.items())}")
    p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "-d", str(dl),
                        *[f"{k}=={v}" for k, v in want.items()]],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RootfsError(f"pip download of {', '.join(want)} failed: {last}: check pip's "
                          "index settings")
    site = _site_packages(root)
    site.mkdir(parents=True, exist_ok=True)
    for whl in sorted(dl.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(site)
    r = chroot.run(root, ["python3", "-m", "compileall", "-q", "-j0", str(Path("/") /
                   site.relative_to(root))], timeout=900)
    if r.returncode != 0:
        raise RootfsError(f"byte-compiling the wheels in {root} failed: {r.stdout[-300:]}")
    return want


def build(release: str, force: bool = False, progress: Progress = _stderr) -> Path:
    """Build (once) the root tree of `release`; returns its root. Locked across workers."""
    if release not in RELEASES:
        raise RootfsError(f"unknown userspace '{release}': use one of {', '.join(RELEASES)}")
    d = tree_dir(release)
    with locked(d.parent / f".{d.name}.lock"):
        done = d / "complete"
        if done.exists() and not force:
            return d / "root"
        if shutil.which("mmdebstrap") is None:
            raise RootfsError("mmdebstrap not found: apt-get install mmdebstrap "
                              "(bootstrap.sh installs it)")
        shutil.rmtree(d, ignore_errors=True)
        d.parent.mkdir(parents=True, exist_ok=True)
        s = apt.settings()
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(dir=d.parent, prefix=f".{d.name}-") as tmp:
            root = Path(tmp) / "root"
            progress(f"rootfs: mmdebstrap {release} with {len(PACKAGES)} packages "
                     "(about a minute)")
            argv = ["mmdebstrap", "--variant=apt", "--mode=root", "--components=main",
                    f"--include={','.join(PACKAGES)}", release, str(root), s["mirror"],
                    f"deb {s['security']} {release}-security main"]
            log = Path(tmp) / "mmdebstrap.log"
            with open(log, "w") as f:
                rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f,
                                    stderr=subprocess.STDOUT).returncode
            if rc != 0:
                text = log.read_text(errors="replace")
                why = [ln for ln in text.splitlines() if ln.startswith("E:")][:1] or \
                    text.strip().splitlines()[-1:]
                raise RootfsError(f"mmdebstrap {release} failed (exit {rc}): "
                                  f"{why[0] if why else '(no output)'}")
            wheels = _install_wheels(root, Path(tmp), progress)
            size = int(subprocess.run(["du", "-sbx", str(root)], capture_output=True,
                                      text=True).stdout.split()[0])
            d.mkdir()
            root.rename(d / "root")
            shutil.copy2(log, d / "mmdebstrap.log")
        meta = {"release": release, "key": key(release), "packages": list(PACKAGES),
                "wheels": wheels, "seconds": round(time.monotonic() - t0, 1), "bytes": size,
                "date": time.strftime("%FT%TZ", time.gmtime())}
        done.write_text(json.dumps(meta, indent=1) + "\n")
        progress(f"rootfs: {release} ready in {d} ({meta['seconds']:.0f}s, "
                 f"{size / 2**20:.0f} MiB)")
    return d / "root"


def describe(release: str) -> dict:
    d = tree_dir(release)
    done = d / "complete"
    info = json.loads(done.read_text()) if done.exists() else {}
    return {"release": release, "built": done.exists(), "path": str(d / "root"), **info}
