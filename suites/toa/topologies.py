"""The TOA suite's topologies, for `knit shell --topology suites/toa:NAME`: `crafted` (a
silent client namespace that scapy speaks for) and `real` (two ordinary stacks)."""

from suites.toa.lib.net import real_topology as real
from suites.toa.lib.net import topology as crafted

__all__ = ["crafted", "real"]
