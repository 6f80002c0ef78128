"""suites.mptcp.lib.mangle: the nft counter parser against real guest output."""

from __future__ import annotations

import pytest

from suites.mptcp.lib.mangle import counter_packets

# `nft -j list counter inet knit_mangle marked` in ns1 after the checksum case marked one
# GSO segment (nftables 1.1.3 of the trixie guest userspace, debian-6.1 6.1.0-57).
MARKED = ('{"nftables": [{"metainfo": {"version": "1.1.3", "release_name": '
          '"Commodore Bullmoose #4", "json_schema_version": 1}}, {"counter": {"family": '
          '"inet", "name": "marked", "table": "knit_mangle", "handle": 2, "packets": 1, '
          '"bytes": 7196}}]}')


def test_counter_packets_reads_the_named_counter() -> None:
    assert counter_packets(MARKED, "marked") == 1


def test_counter_packets_names_a_missing_counter() -> None:
    with pytest.raises(ValueError, match="no counter 'stripped'"):
        counter_packets(MARKED, "stripped")
