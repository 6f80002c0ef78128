"""The MPTCP suite's topologies, by name, for `knit shell --topology suites/mptcp:NAME`."""

from fixtures.mptcp_session import routed, two_hosts

__all__ = ["routed", "two_hosts"]
