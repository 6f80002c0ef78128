"""Topology validation: mistakes are caught on the host with a message that names them."""

import pytest

from knit.errors import KnitError
from knit.paths import ROOT
from knit.shell import load_topology
from knit.topology import End, Link, Node, Route, Topology, TopologyError, pair, veth


def test_pair_is_the_upstream_mptcp_layout():
    t = pair(paths=4)
    d = t.to_dict()
    assert [n["name"] for n in d["nodes"]] == ["ns1", "ns2"]
    assert len(d["links"]) == 4
    assert t.addr("ns1", "ns1eth3") == "10.0.3.1"
    assert t.addr("ns2", "ns2eth4", family=6) == "dead:beef:4::2"


@pytest.mark.parametrize("topology, message", [
    (Topology(nodes=(Node("a"), Node("a"))), "node names used twice: a"),
    (Topology(nodes=(Node("bad name"),)), "bad node name 'bad name'"),
    (Topology(nodes=(Node("a"),), links=(veth("a", "e0", [], "b", "e0", []),)),
     "link end b:e0 names an unknown node"),
    (Topology(nodes=(Node("a"), Node("b")),
              links=(veth("a", "much-too-long-ifname", [], "b", "e0", []),)),
     "bad interface name 'much-too-long-ifname'"),
    (Topology(nodes=(Node("a"), Node("b")),
              links=(veth("a", "e0", ["10.0.0.1/24"], "b", "e0", ["10.0.0.1/24"]),)),
     "address 10.0.0.1 assigned twice"),
    (Topology(nodes=(Node("a"), Node("b")),
              links=(veth("a", "e0", ["10.0.0.300/24"], "b", "e0", []),)),
     "bad address '10.0.0.300/24' on a:e0"),
    (Topology(nodes=(Node("a", routes=(Route("10.1.0.0/16"),)),)),
     "route 10.1.0.0/16 on a needs via or dev"),
    (Topology(nodes=(Node("a"), Node("b")),
              links=(Link(End("a", "e0", master="br0"), End("b", "e0")),)),
     "names bridge 'br0' that a does not declare"),
    (Topology(nodes=(Node("a", sysctls={"../../etc/passwd": "x"}),)), "bad sysctl name"),
])
def test_validation_names_the_mistake(topology, message):
    with pytest.raises(TopologyError, match=message.replace("(", r"\(").replace(".", r"\.")):
        topology.validate()


def test_addr_of_a_missing_interface_is_an_error():
    with pytest.raises(TopologyError, match="no IPv6 address on ns1:nope"):
        pair().addr("ns1", "nope", family=6)


@pytest.mark.parametrize(("spec", "nodes"), [
    ("suites/mptcp:two_hosts", ["ns1", "ns2"]),
    ("suites/mptcp:routed", ["ns1", "r", "ns2"]),
    ("suites/toa:real", ["toa_s", "toa_c"]),
    ("suites/tipc:three_on_bridge", ["tipc1", "tipc2", "tipc3", "tipcsw"]),
])
def test_knit_shell_finds_each_suites_topologies(spec, nodes):
    assert load_topology(str(ROOT / spec)).names == nodes


def test_unknown_suite_topology_lists_the_known_ones():
    with pytest.raises(KnitError, match="has no 'nope'; it has routed, two_hosts"):
        load_topology(str(ROOT / "suites/mptcp:nope"))


def test_a_topology_over_two_vms_splits_into_parts_with_wire_nics():
    from knit.guest import wires
    t = pair(paths=2, b_vm="b")
    assert t.vms == ["a", "b"] and len(t.wires) == 2
    a, b = t.part("a", wires.mac), t.part("b", wires.mac)
    assert [n["name"] for n in a["nodes"]] == ["ns1"] and a["links"] == []
    assert [(n["end"]["ifname"], n["mac"]) for n in a["nics"]] == \
        [("ns1eth1", "02:6b:6e:00:0a:00"), ("ns1eth2", "02:6b:6e:00:0a:01")]
    assert [(n["end"]["node"], n["mac"]) for n in b["nics"]] == \
        [("ns2", "02:6b:6e:00:0b:00"), ("ns2", "02:6b:6e:00:0b:01")]
    assert wires.index("02:6b:6e:00:0b:01") == 1 and wires.index("52:54:00:12:34:56") is None


def test_a_topology_over_two_vms_is_not_built_as_one():
    with pytest.raises(TopologyError, match="spans VMs"):
        pair(b_vm="b").to_dict()
    with pytest.raises(TopologyError, match="on VM 'c'"):
        pair(b_vm="c").validate()
