"""The django_dbos workflows the ``core`` benchmark times (imported after ``django.setup()``).

``dbos_core.py`` defines the same two workflows for the dbos package, body for body: a no-op
step, a workflow with no step, and one with ten no-op steps that also times each step call.
"""

from __future__ import annotations

import time

from django_dbos import DBOS

STEPS = 10

#: Nanoseconds of each step call made by ``workflow_10_steps`` (the caller's view of one step:
#: function_id bookkeeping, serialization, the checkpoint INSERT). Cleared by the benchmark.
STEP_CALL_NS: list[int] = []


@DBOS.step(name="bench.noop")
def noop_step() -> None:
    return None


@DBOS.workflow(name="bench.wf0")
def workflow_0_steps() -> int:
    return 0


@DBOS.workflow(name="bench.wf10")
def workflow_10_steps() -> int:
    clock = time.perf_counter_ns
    for _ in range(STEPS):
        started = clock()
        noop_step()
        STEP_CALL_NS.append(clock() - started)
    return STEPS
