"""A failed transfer's summary carries its window's trouble counters, which is what the
known issue of DSS mapping resets is matched on."""

import json

from knit import known
from suites.mptcp.lib.transfer import Transfer

# The deltas issue 21 reports for the debian-6.12 failure of test_subflow_endpoints[1]
# under -n 4 (2026-12-02): the server reset the join subflow.
TROUBLE = {"ns1": {}, "ns2": {"MPTcpExtDSSNotMatching": 1, "MPTcpExtMPRstTx": 1}}


def test_summary_shows_the_trouble_counters_only_when_there_are_some():
    t = Transfer.from_dict({"connect": "10.0.1.2", "port": 10000, "size": 1, "reply": 0},
                           mib=lambda: TROUBLE)
    assert json.loads(t.summary())["mib"] == TROUBLE
    quiet = Transfer.from_dict({"connect": "10.0.1.2", "port": 10000, "size": 1, "reply": 0},
                               mib=lambda: {"ns1": {}, "ns2": {}})
    assert "mib" not in json.loads(quiet.summary())


def test_a_dss_reset_on_debian_6_12_is_the_known_issue():
    t = Transfer.from_dict({"connect": "10.0.1.2", "port": 10000, "size": 1, "reply": 0},
                           mib=lambda: TROUBLE)
    text = f"AssertionError: {t.summary()}"
    issues = known.load()
    hit = known.match(issues, "debian-6.12", "6.12.118+deb13-amd64", text, [])
    assert hit is not None and hit.id == "mptcp-dss-not-matching"
    assert known.match(issues, "debian-7.3", "7.3.4+deb13-amd64", text, []) is None
