"""Benchmarks for django_dbos, run with ``python benchmarks/run.py <suite> --json [--quick]``.

Each suite is a module here with ``add_arguments(parser)`` and ``run(args) -> dict``; ``run.py``
dispatches by name (see ``SUITES`` in ``run.py``). Method and measured numbers:
``docs/benchmarks.md``.
"""
