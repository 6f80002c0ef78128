"""MP_FASTCLOSE against forged segments: only the receiver's own key closes a connection
(RFC 8684 §3.5), so an off-path guess of the key cannot."""

from __future__ import annotations

import pytest

from suites.mptcp.lib import forge

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")
# A forged segment carries no timestamp: with timestamps on, PAWS would drop it.
NO_TS = {"net.ipv4.tcp_timestamps": "0"}


def test_fastclose_needs_the_receivers_key(vm, mp):
    """A forged MP_FASTCLOSE (pure ACK, in window) with the sender's key instead of the
    receiver's leaves an idle connection working; the control: the same forgery with the
    server's key (from the handshake on the wire) resets it."""
    mp.pair(paths=1, ns1=NO_TS, ns2=NO_TS)
    with forge.held(vm) as conn:
        keys = conn.keys
        with mp.observe() as obs:
            wrong = conn.fastclose(key=keys.client)
            echo = conn.exchange()
        assert echo["ok"] and conn.status()["server_ended"] is None, (echo, wrong)
        # Counted on receipt, and the echo's data came after it on the same path.
        obs.check("ns2", MPFastcloseRx=0)

        with mp.observe() as obs:
            right = conn.fastclose(key=keys.server)
            ended = conn.wait_server_ended(vm.scaled(10))
        assert ended["server_ended"] == "ECONNRESET", (ended, right)
        obs.check("ns2", MPFastcloseRx=1)
