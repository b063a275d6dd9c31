"""Workflows and queues for tests/test_schedules.py and tests/test_schedule_processes.py.

Imported by those modules and by the worker processes the process test starts (their boot
script imports it before running ``dbos_worker``), so both sides register the same workflows.
Not autodiscovered. Nothing here is declared with ``@DBOS.scheduled`` at import time: a
code-declared schedule would be upserted by every worker any test starts; the tests declare
theirs in the test and take them out of the registry afterwards.

Each firing's body writes a ``tests.models.Run`` row (key: the context's ``key``, step: the
scheduled time in UTC ISO 8601) from a step, so counting rows per time shows how often a
firing really ran.
"""

from __future__ import annotations

import datetime
from typing import Any

from django_dbos import DBOS, Queue
from tests.models import Run

sched_queue = Queue("tests.sched.queue", concurrency=5, polling_interval_sec=0.05)
sched_partitioned = Queue("tests.sched.partitioned", partition_queue=True)


@DBOS.step()
def _record(key: str, scheduled_time: datetime.datetime) -> str:
    stamp = scheduled_time.astimezone(datetime.UTC).isoformat()
    Run.objects.create(key=key, step=stamp)
    return stamp


@DBOS.workflow()
def record_firing(scheduled_time: datetime.datetime, context: Any) -> dict[str, Any]:
    """Records its firing; returns what it received (for the tests to inspect)."""
    key = context["key"] if isinstance(context, dict) else str(context)
    _record(key, scheduled_time)
    return {
        "scheduled_time": scheduled_time,
        "context": context,
        "workflow_id": DBOS.workflow_id,
    }


@DBOS.workflow()
async def record_firing_async(scheduled_time: datetime.datetime, context: Any) -> str:
    return scheduled_time.isoformat()


@DBOS.workflow()
def manage_schedules(name: str) -> list[str]:
    """Creates, pauses, resumes and deletes a schedule from inside a workflow (each recorded
    as a step); returns the statuses it saw."""
    DBOS.create_schedule(name, record_firing, "0 0 1 1 *", context={"key": name})
    seen = [DBOS.get_schedule(name)["status"]]  # type: ignore[index]
    DBOS.pause_schedule(name)
    seen.append(DBOS.get_schedule(name)["status"])  # type: ignore[index]
    DBOS.resume_schedule(name)
    seen.append(DBOS.get_schedule(name)["status"])  # type: ignore[index]
    DBOS.delete_schedule(name)
    seen.append(str(DBOS.get_schedule(name)))
    return seen


@DBOS.workflow()
def trigger_inside(name: str) -> None:
    DBOS.trigger_schedule(name)


def not_a_workflow(scheduled_time: datetime.datetime, context: Any) -> None:
    """Plain function: scheduling it is an error."""
