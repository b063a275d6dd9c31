"""Workflows for the control, versioning and gc tests (imported by them; the ``dbos_worker``
subprocess of the cross-process cancel test imports it too).

Step bodies write a ``Run`` row each time they really run, so tests count executions in the
database, across threads and processes.
"""

from __future__ import annotations

import threading

from django_dbos import DBOS
from tests.models import Run

# In-process switches the tests flip: released[key] lets a blocking step return; failing
# holds the keys whose workflow raises; code["version"] is the deployed code (versioning).
released: dict[str, threading.Event] = {}
failing: set[str] = set()
code = {"version": 1}


def runs(key: str, step: str | None = None) -> int:
    rows = Run.objects.filter(key=key)
    return (rows.filter(step=step) if step else rows).count()


@DBOS.step(name="tests.control.mark")
def mark(key: str, step: str) -> str:
    Run.objects.create(key=key, step=step)
    return step


@DBOS.workflow(name="tests.control.sleeper")
def sleeper(key: str, seconds: float) -> str:
    mark(key, "before")
    DBOS.sleep(seconds)
    mark(key, "after")
    return "done"


@DBOS.step(name="tests.control.blocking")
def blocking(key: str) -> str:
    released.setdefault(key, threading.Event()).wait(10)
    Run.objects.create(key=key, step="slow-done")
    return "slow"


@DBOS.workflow(name="tests.control.slow_step")
def slow_step_workflow(key: str) -> list[str]:
    first = blocking(key)
    return [first, mark(key, "next")]


@DBOS.workflow(name="tests.control.middle")
def middle(key: str, seconds: float) -> str:
    return sleeper(key, seconds)  # an inline child: the grandchild of tree_root


@DBOS.workflow(name="tests.control.tree_root")
def tree_root(key: str, seconds: float) -> list[str]:
    """root -> (in the background) middle ``<root>-1`` -> (inline) sleeper ``<root>-1-1``."""
    child = DBOS.start_workflow(middle, f"{key}-leaf", seconds)
    DBOS.sleep(seconds)
    return [mark(key, "root-after"), child.get_result()]


@DBOS.workflow(name="tests.control.four_steps")
def four_steps(key: str) -> list[int]:
    return [int(mark(key, str(n))) for n in range(1, 5)]


@DBOS.workflow(name="tests.control.fails_after_a_step")
def fails_after_a_step(key: str) -> str:
    mark(key, "first")
    if key in failing:
        raise RuntimeError(f"{key} failed")
    return mark(key, "second")


@DBOS.step(name="tests.control.failing_step")
def failing_step(key: str) -> str:
    Run.objects.create(key=key, step="failing-step")
    if key in failing:
        raise RuntimeError(f"step of {key} failed")
    return "ok"


@DBOS.workflow(name="tests.control.step_error")
def step_error_workflow(key: str) -> str:
    return failing_step(key)


@DBOS.workflow(name="tests.control.operator")
def operator_workflow(target: str) -> list[str]:
    """Operates on another workflow from inside a workflow: each operation is a step."""
    forked = DBOS.fork_workflow(target, 1)
    DBOS.update_workflow_attributes(target, {"seen_by": DBOS.workflow_id})
    return [forked.workflow_id, mark(target, "operator-after")]


@DBOS.step(name="tests.control.old_step")
def old_step(key: str) -> str:
    Run.objects.create(key=key, step="old")
    return "old"


@DBOS.step(name="tests.control.new_step")
def new_step(key: str) -> str:
    Run.objects.create(key=key, step="new")
    return "new"


@DBOS.workflow(name="tests.control.patched")
def patched_workflow(key: str) -> list[str]:
    """Version 1 calls old_step; version 2 patches it to new_step; version 3 deprecates the
    patch (new_step only, still stepping over markers of version-2 runs); version 4 is the
    same change made without a patch."""
    first = mark(key, "a")
    if code["version"] == 1:
        middle_step = old_step(key)
    elif code["version"] == 2:
        middle_step = new_step(key) if DBOS.patch("use-new-step") else old_step(key)
    elif code["version"] == 3:
        DBOS.deprecate_patch("use-new-step")
        middle_step = new_step(key)
    else:  # changed without a patch: old runs cannot replay
        middle_step = new_step(key)
    return [first, middle_step, mark(key, "c")]


@DBOS.workflow(name="tests.control.patched_async")
async def patched_async_workflow(key: str) -> list[object]:
    first = await DBOS.patch_async("async-patch")
    again = await DBOS.deprecate_patch_async("async-patch")
    return [first, again, mark(key, "after")]


@DBOS.workflow(name="tests.control.patch_in_step")
def patch_in_step_workflow() -> bool:
    return DBOS.run_step(None, DBOS.patch, "inside")


@DBOS.workflow(name="tests.control.patch_named")
def patch_named(name: object) -> bool:
    return DBOS.patch(name)  # type: ignore[arg-type]
