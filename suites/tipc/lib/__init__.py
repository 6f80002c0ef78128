"""TIPC suite helpers: topologies and the `tipc` tool wrapper (net), its output parsers
(parsers) and guest-side AF_TIPC sockets (sock)."""
