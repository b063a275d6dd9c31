"""Run a benchmark suite: ``python benchmarks/run.py <suite> [--json] [--quick]``.

A suite is a module ``benchmarks.<name>`` with ``add_arguments(parser)`` (its own options) and
``run(args) -> dict`` (its figures). Progress goes to stderr; with ``--json`` the last line of
stdout is one JSON object, without it a plain ``name: value`` listing. Add a suite by adding its
module and a line to ``SUITES``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts benchmarks/ itself first on sys.path, where benchmarks/queue.py
# would shadow the standard library's `queue`: drop it, and make the project importable.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO_ROOT / "benchmarks"]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import BenchmarkError, progress  # noqa: E402

SUITES = {
    "core": "benchmarks.core",  # step and workflow overhead vs raw INSERT and vs dbos
    "comm": "benchmarks.comm",  # send->recv and set_event->get_event latency vs dbos
    "queue": "benchmarks.queue",  # enqueue, drain and enqueue->start vs dbos
}


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    subparsers = main.add_subparsers(dest="suite", required=True, metavar="SUITE")
    for name, module_name in SUITES.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        sub = subparsers.add_parser(name, help=doc.split("\n")[0], description=doc)
        sub.add_argument("--json", action="store_true", help="print the result as JSON (last line)")
        sub.add_argument("--quick", action="store_true", help="fewer iterations (under a minute)")
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.module.run(args)
    except BenchmarkError as exc:
        print(f"benchmarks/run.py {args.suite}: {exc}", file=sys.stderr)
        return 2
    progress(f"{args.suite}: done")
    if args.json:
        print(json.dumps(result, sort_keys=False), flush=True)
    else:
        for key, value in result.items():
            if key not in ("detail", "profile"):
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
