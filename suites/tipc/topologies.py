"""The TIPC suite's topologies, for `knit shell --topology suites/tipc:NAME`."""

from suites.tipc.lib.net import three_on_bridge, two_nodes, two_paths

__all__ = ["three_on_bridge", "two_nodes", "two_paths"]
