"""The checkout's root, the one place it is computed: the guest sees the checkout at the
same path (PYTHONPATH=ROOT), and every path into it (kernels/, kmod/, bpf/) starts here."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
