"""The NICs that join the two VMs of a pair: one virtio-net NIC per wire in each VM,
backed by a QEMU dgram netdev on unix sockets (knit.vngcmd). The host and the guest
agree on their MACs, by which the guest finds a wire's NIC whatever the kernel named it.

Between tests a NIC rests in the root netns, down, under its parking name (kw<i>).
"""

from __future__ import annotations

COUNT = 4           # wires per pair: enough for 2 MPTCP paths, TIPC failover and spares
ROLES = ("a", "b")  # knit.topology.VMS
_PREFIX = "02:6b:6e:00"  # locally administered, unicast ("kn")


def mac(vm: str, i: int) -> str:
    """The MAC of wire `i`'s NIC in VM `vm`."""
    if vm not in ROLES or not 0 <= i < COUNT:
        raise ValueError(f"no wire {i} on VM {vm!r}: a pair has {COUNT} wires, VMs {ROLES}")
    return f"{_PREFIX}:{0x0a + ROLES.index(vm):02x}:{i:02x}"


def index(address: str) -> int | None:
    """Wire number of a knit NIC's MAC, None for any other address."""
    if not address.lower().startswith(_PREFIX + ":"):
        return None
    return int(address.split(":")[5], 16)


def parking_name(i: int) -> str:
    return f"kw{i}"
