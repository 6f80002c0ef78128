"""The host side of the guest channel, over a real socket pair (no VM)."""

import socket

import pytest

from knit.channel import Channel
from knit.errors import ChannelClosed


def test_a_send_to_a_dead_guest_is_channel_closed_not_broken_pipe():
    host, guest = socket.socketpair()
    ch = Channel(host)
    # The write side is gone but the reader has seen no EOF yet: what a SIGKILLed qemu
    # looks like for a moment (the case_qemu_killed fault once surfaced a BrokenPipeError).
    host.shutdown(socket.SHUT_WR)
    with pytest.raises(ChannelClosed, match="guest channel closed"):
        ch.request("run", wait=1.0)
    guest.close()
