"""Guest side of topologies: build and destroy netns with pyroute2, in-process.

Runs in a forked child of the agent (vm.call), so it can move the whole process
between namespaces with setns. No `ip` is exec'd: every exec costs ~100 ms under TCG.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager

from pyroute2 import IPRoute

from knit.guest import wires
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


def _by_mac(ipr: IPRoute, mac: str) -> int | None:
    for link in ipr.get_links():
        if (link.get_attr("IFLA_ADDRESS") or "").lower() == mac.lower():
            return link["index"]
    return None


def _netem(ifname: str, netem: dict) -> None:
    """A netem root qdisc on `ifname` (tc: its units read plainly; once per link)."""
    argv = ["tc", "qdisc", "add", "dev", ifname, "root", "netem"]
    if netem["delay_ms"] or netem["jitter_ms"]:
        argv += ["delay", f"{netem['delay_ms']}ms", f"{netem['jitter_ms']}ms"]
    if netem["loss_pct"]:
        argv += ["loss", f"{netem['loss_pct']}%"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")


def _move_nics(nics: list[dict]) -> None:
    """Each wire NIC (found by MAC in the root netns) into its node, renamed there."""
    with IPRoute() as ipr:
        for nic in nics:
            idx = _by_mac(ipr, nic["mac"])
            if idx is None:
                raise RuntimeError(f"no NIC with MAC {nic['mac']} in the root netns: the VM "
                                   "was booted without wires, or a test kept it")
            ipr.link("set", index=idx, state="down")
            ipr.link("set", index=idx, net_ns_fd=nic["end"]["node"])
    for nic in nics:
        with inside(nic["end"]["node"]), IPRoute() as ipr:
            ipr.link("set", index=_by_mac(ipr, nic["mac"]), ifname=nic["end"]["ifname"])


def _park_nics(name: str) -> list[str]:
    """Move the wire NICs of netns `name` back to the root netns, down, as kw<i>: a netns
    that goes away hands them back too, but later and under a name of its choosing."""
    parked = []
    root = os.open("/proc/thread-self/ns/net", os.O_RDONLY)  # destroy() runs in the root
    try:
        with inside(name), IPRoute() as ipr:
            for link in ipr.get_links():
                i = wires.index(link.get_attr("IFLA_ADDRESS") or "")
                if i is None or link.get_attr("IFLA_LINKINFO") is not None:
                    continue  # not a wire (a veth carries IFLA_LINKINFO)
                ipr.link("set", index=link["index"], state="down")
                ipr.link("set", index=link["index"], ifname=wires.parking_name(i))
                ipr.link("set", index=link["index"], net_ns_fd=root)
                parked.append(wires.parking_name(i))
    finally:
        os.close(root)
    return parked


def park_all(want: int = wires.COUNT, wait: float = 30.0) -> dict:
    """At boot: every wire NIC down under its parking name (before the pool's baseline).
    Debian builds virtio_net as a module, and no udev loads it in knit's guest."""
    subprocess.run(["modprobe", "virtio_net"], capture_output=True, timeout=wait)
    deadline = time.monotonic() + wait
    while True:
        found = _park_root()
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _park_root() -> dict:
    found = {}
    with IPRoute() as ipr:
        for link in ipr.get_links():
            i = wires.index(link.get_attr("IFLA_ADDRESS") or "")
            if i is not None:
                ipr.link("set", index=link["index"], state="down")
                ipr.link("set", index=link["index"], ifname=wires.parking_name(i))
                found[wires.parking_name(i)] = link.get_attr("IFLA_ADDRESS")
    return found


def build(topology: dict) -> dict:
    """Create every node, link and setting of `topology` (Topology.to_dict(), or one VM's
    Topology.part(): its "nics" are the wire NICs it moves into its nodes)."""
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
    nics = topology.get("nics", [])
    _move_nics(nics)
    for node in topology["nodes"]:
        ends = [{**e, "up": link["up"], "netem": link.get("netem")}
                for link in topology["links"]
                for e in (link["a"], link["b"]) if e["node"] == node["name"]]
        ends += [{**n["end"], "up": n["up"], "netem": n["netem"]} for n in nics
                 if n["end"]["node"] == node["name"]]
        with inside(node["name"]), IPRoute() as ipr:
            _configure(ipr, node, ends)
            for end in ends:
                if end["netem"]:
                    _netem(end["ifname"], end["netem"])
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
        _park_nics(name)
        _libc.umount2(f"{NETNS_DIR}/{name}".encode(), MNT_DETACH)
        os.unlink(f"{NETNS_DIR}/{name}")
    left = [n for n in names if os.path.exists(f"{NETNS_DIR}/{n}")]
    return {"killed": killed, "left": left}

