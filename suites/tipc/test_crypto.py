"""TIPC's own link encryption (CONFIG_TIPC_CRYPTO, `tipc node set key`).

Keys are set before the bearers come up, so no message ever crosses in clear. The traffic is
multicast over the broadcast link: unicast between netns of one kernel skips the links (see
suites.tipc.lib.sock.rdm_socket), the broadcast link's packets cross the bearers and so go
through the AEAD.
"""

from __future__ import annotations

import json

import pytest

from suites.tipc.lib.net import link, two_nodes
from suites.tipc.lib.parsers import progress

pytestmark = [pytest.mark.kconfig("CONFIG_TIPC", "CONFIG_TIPC_CRYPTO")]
SOCK = "suites.tipc.lib.sock"
LINK = link("tipc1", "eth1", "tipc2", "eth1")
# 32-byte AES-256 key + 4-byte salt, as `tipc node set key` takes them.
KEY_A = bytes(range(36))
KEY_B = bytes(range(100, 136))


def keyed_pair(vm, topo, tipc, keys: dict[str, bytes], master: bool = False) -> None:
    """tipc1 <-> tipc2 over one veth, each node keyed before its eth bearer is enabled."""
    topo(two_nodes())
    for ns, key in keys.items():
        tipc.set_identity(ns, ns)
        tipc.set_key(ns, key, master=master)
        tipc.enable_eth(ns, "eth1")


def deliver(vm, tipc, type_: int, count: int, seconds: float) -> tuple[dict, dict]:
    """Send `count` broadcast messages from tipc1 to a sink on tipc2 for up to `seconds`;
    (what the sender managed, the sink's summary)."""
    with vm.spawn(tipc.sock("sink", "--type", type_, "--instance", 1), ns="tipc2",
                  ready="ready") as sink:
        sent = vm.call(f"{SOCK}:send_until", ns="tipc1", type=type_, instance=1, count=count,
                       seconds=seconds, broadcast=True, timeout=seconds + vm.scaled(10))
        if not sent["errors"]:            # else the end marker may be lost too: the
            sink.wait_for('"summary"', vm.scaled(5))    # SIGINT at exit makes it report
    [summary] = [d for d in map(json.loads, sink.result.stdout.splitlines()) if "summary" in d]
    return sent, summary


@pytest.mark.parametrize("master", [False, True], ids=["crypto-cluster-key", "crypto-master-key"])
def test_crypto_same_keys_deliver_different_keys_none(vm, topo, tipc, master):
    """Matching keys: the link comes up and all 200 messages arrive. Different keys (the
    positive control's topology, keys only changed): within the same wait the link never
    comes up and the sink counts nothing."""
    up_within = vm.scaled(10)
    keyed_pair(vm, topo, tipc, {"tipc1": KEY_A, "tipc2": KEY_A}, master)
    tipc.wait_links("tipc1", {LINK: "up"}, up_within)
    sent, summary = deliver(vm, tipc, 18893, 200, vm.scaled(5))
    assert sent == {"sent": 200, "errors": {}}
    assert summary["received"] == summary["distinct"] == 200 and summary["ended"]
    vm.call("knit.guest.netns:destroy", names=["tipc1", "tipc2"])

    keyed_pair(vm, topo, tipc, {"tipc1": KEY_A, "tipc2": KEY_B}, master)
    assert "up" not in tipc.link_states_during("tipc1", LINK, up_within)
    sent, summary = deliver(vm, tipc, 18893, 200, vm.scaled(5))
    assert summary["received"] == 0, summary
    assert sent["sent"] == 0 and sent["errors"], sent        # the service is unreachable


def test_crypto_key_replaced_while_traffic_runs_loses_nothing(vm, topo, tipc):
    keyed_pair(vm, topo, tipc, {"tipc1": KEY_A, "tipc2": KEY_A})
    tipc.wait_links("tipc1", {LINK: "up"}, vm.scaled(10))
    with vm.spawn(tipc.sock("sink", "--type", 18894, "--instance", 1), ns="tipc2",
                  ready="ready") as sink, \
         vm.spawn(tipc.sock("source", "--type", 18894, "--instance", 1, "--interval", 0.005,
                            "--every", 20, "--broadcast"), ns="tipc1", ready='"sent"') as src:
        for ns in ("tipc1", "tipc2"):
            # EBUSY while the node's current key is still pending (not yet taken by its
            # peer, net/tipc/crypto.c tipc_crypto_key_attach): the kernel asks to retry.
            tipc.wait(lambda ns=ns: tipc.set_key(ns, KEY_B, check=False), lambda r: r.ok,
                      vm.scaled(5), f"{ns} accepting the new key")
        at_swap = progress(src.output().stdout)
        tipc.wait(lambda: progress(src.output().stdout), lambda n: n >= at_swap + 200,
                  vm.scaled(15), "messages sent after the key was replaced")
        src.stop()
        summary = json.loads(sink.wait_for('"summary"', vm.scaled(10)).splitlines()[-1])
    sent = progress(src.result.stdout)
    assert tipc.links("tipc1")[LINK] == "up"
    assert summary["ended"] and summary["missing"] == [] and summary["duplicated"] == []
    assert summary["received"] == sent and summary["reordered"] == 0


def test_crypto_master_key_exchange_and_rekeying(vm, topo, tipc):
    """With only a master key set, each node makes its own session key and sends it to the
    peer encrypted with the master key; `rekeying now` replaces it while the link stays."""
    keyed_pair(vm, topo, tipc, {"tipc1": KEY_A, "tipc2": KEY_A}, master=True)
    tipc.wait_links("tipc1", {LINK: "up"}, vm.scaled(10))
    for round_ in range(2):
        sent, summary = deliver(vm, tipc, 18895, 100, vm.scaled(5))
        assert sent == {"sent": 100, "errors": {}}, round_
        assert summary["received"] == summary["distinct"] == 100 and summary["ended"], round_
        tipc.rekey_now("tipc1")
        tipc.rekey_now("tipc2")
    assert tipc.links("tipc1")[LINK] == tipc.links("tipc2")[link("tipc2", "eth1", "tipc1",
                                                                   "eth1")] == "up"


@pytest.mark.parametrize("media", ["eth", "udp"])
def test_crypto_teardown_after_master_key(vm, topo, tipc, media):
    """The reproducer that came with a use-after-free fix in the crypto path: bearer enable,
    set a master key, bearer disable, delete the netns. The health oracle (dmesg) judges it;
    three rounds, and a fresh netns afterwards, to make a freed key's work run."""
    for _ in range(3):
        topo(two_nodes())
        tipc.set_identity("tipc1", "tipc1")
        if media == "eth":
            tipc.enable_eth("tipc1", "eth1")
        else:
            tipc.enable_udp("tipc1", "b1", "10.0.1.1", "10.0.1.2")
        tipc.set_key("tipc1", KEY_A, master=True)
        tipc.disable_bearer("tipc1", media, "eth1" if media == "eth" else "b1")
        vm.call("knit.guest.netns:destroy", names=["tipc1", "tipc2"])
    keyed_pair(vm, topo, tipc, {"tipc1": KEY_A, "tipc2": KEY_A}, master=True)
    tipc.wait_links("tipc1", {LINK: "up"}, vm.scaled(10))


@pytest.mark.kconfig("CONFIG_TIPC_MEDIA_IB")
def test_crypto_ib_bearer(vm, topo, tipc):
    """The guide's InfiniBand bearer: needs an RDMA device, which a virtme-ng guest has not."""
    devs = vm.run(["ls", "/sys/class/infiniband"], check=False).stdout.split()
    if not devs:
        pytest.skip("no InfiniBand device in the guest (/sys/class/infiniband is empty)")
    topo(two_nodes())
    tipc.set_identity("tipc1", "tipc1")
    tipc.set_key("tipc1", KEY_A)
    tipc.run("tipc1", "bearer", "enable", "media", "ib", "device", devs[0])
    assert [b.name for b in tipc.bearers("tipc1")] == [devs[0]]

