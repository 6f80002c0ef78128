"""Registers knit's pytest plugin for runs from the project root (`pytest suites/...`)."""

pytest_plugins = ["knit.plugin", "knit.plugin_report"]
