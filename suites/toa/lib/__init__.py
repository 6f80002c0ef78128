"""TOA suite helpers: topologies and the host-side driver (net), the implementations under
test (impl), guest-side client/server/BPF code (client, server, bpf), wire building (wire)
and the counters' parsers (stats)."""
