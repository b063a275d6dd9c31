"""Workflows the introspection tests run (imported by the tests, not autodiscovered)."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django_dbos import DBOS


class IntroError(Exception):
    pass


@DBOS.step(name="tests.intro.double")
def double(x: int) -> int:
    return 2 * x


@DBOS.workflow(name="tests.intro.ok")
def ok_workflow(x: int, *, note: str = "") -> int:
    return double(x) + 1


@DBOS.workflow(name="tests.intro.other")
def other_workflow(day: datetime.date) -> dict[str, Decimal]:
    return {"total": Decimal("12.50")}


@DBOS.workflow(name="tests.intro.failing")
def failing_workflow(reason: str) -> None:
    double(1)
    raise IntroError(reason)


@DBOS.workflow(name="tests.intro.parent")
def parent_workflow(x: int) -> int:
    return ok_workflow(double(x))


@DBOS.workflow(name="tests.intro.lister")
def lister_workflow(prefix: str) -> dict[str, object]:
    """Reads the tables from inside a workflow: each read is recorded, so a replay sees the
    same answers even when the tables have changed since."""
    listed = DBOS.list_workflows(workflow_id_prefix=prefix, load_input=False)
    queued = DBOS.list_queued_workflows(workflow_id_prefix=prefix)
    status = DBOS.get_workflow_status(listed[0].workflow_id)
    steps = DBOS.list_workflow_steps(listed[0].workflow_id)
    double(1)
    return {
        "listed": [s.workflow_id for s in listed],
        "queued": [s.workflow_id for s in queued],
        "status": status.status if status else None,
        "steps": len(steps),
    }


@DBOS.workflow(name="tests.intro.async_lister")
async def async_lister_workflow(prefix: str) -> list[str]:
    listed = await DBOS.list_workflows_async(workflow_id_prefix=prefix)
    queued = await DBOS.list_queued_workflows_async(workflow_id_prefix=prefix)
    status = await DBOS.get_workflow_status_async(listed[0].workflow_id)
    steps = await DBOS.list_workflow_steps_async(listed[0].workflow_id)
    return [s.workflow_id for s in listed + queued] + [str(status and status.status), str(steps)]


@DBOS.workflow(name="tests.intro.two_steps")
def two_steps(x: int) -> int:
    return double(x) + double(x + 1)
