"""The kernel suites. A package so that each suite's helpers import by one name
(`suites.<suite>.lib.<module>`) on the host and in the guest (PYTHONPATH=<checkout>)."""
