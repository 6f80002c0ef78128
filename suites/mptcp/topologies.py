"""The MPTCP suite's topologies, by name, for `knit shell --topology suites/mptcp:NAME`."""

from suites.mptcp.lib.session import routed, two_hosts

__all__ = ["routed", "two_hosts"]
