"""The bcc suite's tests (a package: see suites/__init__.py)."""
