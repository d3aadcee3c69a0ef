"""Benchmarks of neuromas, each run as ``python -m benchmarks.NAME`` from the repository root.

Shared helpers (child-process arms, reusing ``neuromas run`` directories, markdown tables)
live in :mod:`benchmarks.common`.
"""
