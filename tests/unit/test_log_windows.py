"""The kernel-log windows outside a test's own: boot (before the first test on a VM) and
session end (after the last test's check). The real fixtures and checks of knit.plugin
run, on a stand-in pool whose VM gives scripted kernel log lines."""

import json

import pytest

pytest_plugins = ["pytester"]

WARN = ["[    1.201000] WARNING: CPU: 0 PID: 1 at drivers/base/core.c:100 device_add+0x10/0x20",
        "[    1.201100] Call Trace:",
        "[    1.201200]  really_probe+0x2b/0x50"]
CONFTEST = '''
from types import SimpleNamespace

import pytest

import knit.plugin
from knit import health

WARN = WARN_LINES
CLEAN = {"netns": [], "modules": {}, "sysctl": {}}


class FakeVM:
    dirty, alive, kept, console = "", True, False, "console.log"
    resident_modules: frozenset[str] = frozenset()
    cfg = SimpleNamespace(accel="tcg", kernel=SimpleNamespace(name="k", version="6.12.0"))

    def run(self, argv, ns=None, check=True):  # what artifacts.collect runs
        return SimpleNamespace(stdout="", stderr="")

    def kmsg(self, after=-1):
        return after + 1, []

    def state(self):
        return CLEAN

    def scaled(self, seconds):
        return seconds

    def call(self, target, **kwargs):
        return {"kmemleak": None}

    def console_tail(self, n=50):
        return ""


class FakePool:
    def __init__(self, **kwargs):
        self.vm, self.kmsg_seq, self.final_faults = FakeVM(), {}, []
        self.baseline = {"k@trixie": CLEAN}
        self.boot_faults = {"k@trixie": health.scan(WARN) if "BOOT" else []}

    def kernel(self, name):
        return SimpleNamespace(name=name, version="6.12.0")

    def userspace(self, name):
        return None

    def get(self, kernel, userspace):
        return self.vm

    def close(self):
        if "FINAL":
            self.final_faults = [("k@trixie", f) for f in health.scan(WARN)]


knit.plugin.VMPool = FakePool
'''
TESTS = "def test_first(vm):\n    pass\n\n\ndef test_second(vm):\n    pass\n"


def _run(pytester: pytest.Pytester, boot: bool, final: bool) -> dict[str, dict]:
    pytester.makeconftest(CONFTEST.replace("WARN_LINES", repr(WARN))
                          .replace('"BOOT"', str(boot)).replace('"FINAL"', str(final)))
    pytester.makepyfile(test_w=TESTS)
    art = pytester.path / "art"
    pytester.runpytest_subprocess("-p", "knit.plugin", "-p", "knit.plugin_report",
                                  "-p", "no:randomly", "--kernel", "k",
                                  "--knit-artifacts", str(art))
    recs = json.loads((art / "results.json").read_text())["tests"]
    return {r["nodeid"].split("::")[1].split("[")[0]: r for r in recs}


def test_a_fault_during_boot_fails_the_first_test_on_that_vm(pytester):
    recs = _run(pytester, boot=True, final=False)
    assert recs["test_first"]["outcome"] == "error"
    assert "kernel fault during the boot of k@trixie" in recs["test_first"]["message"]
    assert recs["test_first"]["faults"][0].startswith("warning ")
    assert recs["test_second"]["outcome"] == "passed"


def test_a_fault_after_the_last_check_is_reported_at_session_end(pytester):
    recs = _run(pytester, boot=False, final=True)
    assert recs["test_first"]["outcome"] == "passed"
    assert recs["test_second"]["outcome"] == "error"
    assert "found at session end on k@trixie" in recs["test_second"]["message"]


def test_clean_windows_pass(pytester):
    recs = _run(pytester, boot=False, final=False)
    assert [r["outcome"] for r in recs.values()] == ["passed", "passed"]
