"""Guest side of topologies: build and destroy netns with pyroute2, in-process.

Runs in a forked child of the agent (vm.call), so it can move the whole process
between namespaces with setns. No `ip` is exec'd: every exec costs ~100 ms under TCG.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

from pyroute2 import IPRoute

from knit.guest.setns import CLONE_NEWNET, NETNS_DIR, libc, setns_fd
from knit.guest.setns import check as _check

MS_BIND, MS_REC, MS_SHARED, MNT_DETACH = 4096, 16384, 1 << 20, 2
IFA_F_NODAD = 0x02

_libc = libc()


@contextmanager
def inside(name: str | None):
    """Enter netns `name` (None = stay) and come back to where we were."""
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open(f"{NETNS_DIR}/{name}", os.O_RDONLY)
    try:
        setns_fd(fd, f"setns {name}")
        yield
    finally:
        setns_fd(home, "setns back")
        os.close(fd)
        os.close(home)


def create_netns(name: str) -> None:
    """What `ip netns add` does: unshare, then bind-mount the new netns at /run/netns."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        _check(_libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none",
                           MS_BIND | MS_REC, None), "bind /run/netns")
        _check(_libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None),
               "share /run/netns")
    path = f"{NETNS_DIR}/{name}"
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
               f"bind {path}")
    finally:
        setns_fd(home, "setns back")
        os.close(home)


def write_sysctl(key: str, value: str) -> None:
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(str(value))


def _configure(ipr: IPRoute, node: dict, ends: list[dict]) -> None:
    lo = ipr.link_lookup(ifname="lo")[0]
    ipr.link("set", index=lo, state="up")
    for br in node["bridges"]:
        ipr.link("add", ifname=br, kind="bridge")
        ipr.link("set", index=ipr.link_lookup(ifname=br)[0], state="up")
    for key, value in node["sysctls"].items():
        write_sysctl(key, value)
    for end in ends:
        idx = ipr.link_lookup(ifname=end["ifname"])[0]
        if end["master"]:
            ipr.link("set", index=idx, master=ipr.link_lookup(ifname=end["master"])[0])
        for a in end["addrs"]:
            addr, plen = a.split("/")
            flags = IFA_F_NODAD if ":" in addr else 0  # usable at once, no DAD wait
            ipr.addr("add", index=idx, address=addr, prefixlen=int(plen), flags=flags)
        if end["up"]:
            ipr.link("set", index=idx, state="up")
    for r in node["routes"]:
        kw = {"dst": r["dst"]} if r["dst"] != "default" else {"dst": "default"}
        if ":" in (r["via"] or r["dst"]):
            kw["family"] = 10
        if r["via"]:
            kw["gateway"] = r["via"]
        if r["dev"]:
            kw["oif"] = ipr.link_lookup(ifname=r["dev"])[0]
        ipr.route("add", **kw)


def build(topology: dict) -> dict:
    """Create every node, link and setting of `topology` (Topology.to_dict())."""
    t0 = time.monotonic()
    names = [n["name"] for n in topology["nodes"]]
    clash = [n for n in names if os.path.exists(f"{NETNS_DIR}/{n}")]
    if clash:
        raise RuntimeError(f"netns already exist: {', '.join(clash)} (a previous test leaked)")
    for n in names:
        create_netns(n)
    with IPRoute() as ipr:
        for link in topology["links"]:
            a, b = link["a"], link["b"]
            ipr.link("add", ifname=a["ifname"], kind="veth", net_ns_fd=a["node"],
                     peer={"ifname": b["ifname"], "net_ns_fd": b["node"]})
    for node in topology["nodes"]:
        ends = [{**e, "up": link["up"]} for link in topology["links"]
                for e in (link["a"], link["b"]) if e["node"] == node["name"]]
        with inside(node["name"]), IPRoute() as ipr:
            _configure(ipr, node, ends)
    return {"nodes": names, "seconds": round(time.monotonic() - t0, 3)}


def _pids_in(name: str) -> list[int]:
    ino = os.stat(f"{NETNS_DIR}/{name}").st_ino
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == ino:
                    pids.append(int(pid))
            except OSError:
                continue
    return pids


def destroy(names: list[str]) -> dict:
    """Kill what still runs in the nodes, then remove them. Returns what was killed."""
    killed: dict[str, list[int]] = {}
    for name in names:
        if not os.path.exists(f"{NETNS_DIR}/{name}"):
            continue
        pids = [p for p in _pids_in(name) if p != os.getpid()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if pids:
            killed[name] = pids
        _libc.umount2(f"{NETNS_DIR}/{name}".encode(), MNT_DETACH)
        os.unlink(f"{NETNS_DIR}/{name}")
    left = [n for n in names if os.path.exists(f"{NETNS_DIR}/{n}")]
    return {"killed": killed, "left": left}

