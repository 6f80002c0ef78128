"""vm.call's target: a function object or its "package.module:function" name."""

import pytest

from knit.guest import netns
from knit.vm import call_target
from suites.mptcp.lib import traffic
from suites.mptcp.lib.transfer import Transfer


def test_a_function_names_itself_and_a_string_passes_through():
    assert call_target(netns.build) == "knit.guest.netns:build"
    assert call_target(traffic.transfer) == "suites.mptcp.lib.traffic:transfer"
    assert call_target("knit.guest.netns:destroy") == "knit.guest.netns:destroy"


def test_what_the_guest_cannot_import_is_refused():
    with pytest.raises(ValueError, match="module-level"):
        call_target(lambda: None)


def test_a_transfer_is_typed_and_its_repr_is_the_summary():
    raw = {"connect": "10.0.1.2", "port": 10000, "size": 4, "reply": 0, "intact": False,
           "mptcp": True, "sent": 4, "info_end": {"subflows": 1}, "server": {"received": 3},
           "actions": [{"argv": ["ip", "link"], "rc": 0, "stderr": " \n"}],
           "subflows_end": [{"local": ["10.0.1.1", 1], "bytes_acked": 4, "bytes_received": 0}],
           "a_key_from_a_newer_guest": 1}
    r = Transfer.from_dict(raw)
    assert not r.intact and r.info_end["subflows"] == 1
    assert r.bytes_on("10.0.1.1") == 4 and r.subflow("10.0.2.1")["gone"]
    assert '"server": {"received": 3}' in r.summary() and repr(r) == f"Transfer({r.summary()})"
    assert '"actions": [[["ip", "link"], 0, ""]]' in r.summary()
