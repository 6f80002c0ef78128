"""The TOA suite's topologies, for `knit shell --topology suites/toa:NAME`: `crafted` (a
silent client namespace that scapy speaks for) and `real` (two ordinary stacks)."""

from fixtures.toa_net import real_topology as real
from fixtures.toa_net import topology as crafted

__all__ = ["crafted", "real"]
