"""Helpers for testing your own workflows.

Run a workflow, make it "crash" after step N exactly as a killed process would (it stays PENDING
with its checkpoints), recover it in this thread, and assert on its recorded steps::

    from django_dbos.testing import simulate_crash, recover_workflow, workflow_step_names

    def test_order_survives_a_crash(db):
        with simulate_crash(after_step=2), SetWorkflowID("order-1"):
            order_workflow(1)
        assert recover_workflow("order-1") == "shipped"
        assert workflow_step_names("order-1") == ["validate", "reserve", ...]

Inline runs and in-thread recovery work inside an ordinary (rolled-back) test transaction.
Workflows that run on other threads (``DBOS.start_workflow``, ``running_worker``) only see
committed data: use ``TransactionTestCase`` or ``@pytest.mark.django_db(transaction=True)``.

pytest users can load the fixtures with ``pytest_plugins = ["django_dbos.testing"]``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from django_dbos import serialization
from django_dbos.context import StartOptions, _next_start
from django_dbos.engine import system_db
from django_dbos.engine.executor import ProcessExecutor, get_executor, reset_executor
from django_dbos.engine.handles import wait_for_result
from django_dbos.engine.introspection import list_workflow_steps
from django_dbos.engine.recovery import _claim
from django_dbos.engine.worker import run_worker
from django_dbos.engine.workflows import execute
from django_dbos.errors import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSException,
    DBOSWorkflowCancelledError,
    DBOSWorkflowInterrupted,
)
from django_dbos.models import WorkflowStatusString
from django_dbos.registry import registry

try:  # pytest is optional: the fixtures exist only where it is installed
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]


class simulate_crash:
    """The next workflow started in this block dies right after its step ``after_step`` (a
    function_id, counting from 1) is checkpointed; the simulated crash is swallowed on exit."""

    def __init__(self, after_step: int) -> None:
        if not isinstance(after_step, int) or after_step < 1:
            raise DBOSException(f"after_step must be a step number of 1 or more: {after_step!r}")
        self.after_step = after_step
        self.crashed_workflow_id: str | None = None

    def __enter__(self) -> simulate_crash:
        import dataclasses

        self._token = _next_start.set(
            dataclasses.replace(_next_start.get(), crash_after_step=self.after_step)
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        _next_start.reset(self._token)
        if isinstance(exc, DBOSWorkflowInterrupted) and exc.reason == "simulated crash":
            self.crashed_workflow_id = exc.workflow_id
            return True
        return False


def recover_workflow(workflow_id: str) -> Any:
    """Recover a PENDING workflow in this thread, as a restarted worker would, and return its
    result (or raise its error). Replays the recorded checkpoints; runs only what is missing."""
    summary = system_db.get_summary(workflow_id)
    if summary is None:
        raise DBOSException(f"No workflow with ID {workflow_id!r} to recover.")
    if summary.status != WorkflowStatusString.PENDING:
        return wait_for_result(workflow_id, timeout=0)
    ctx = _claim(summary, summary.executor_id)
    if ctx is None:
        return wait_for_result(workflow_id, timeout=0)
    definition = registry.get_workflow(summary.name, workflow_id)
    args, kwargs = serialization.deserialize_args(summary.inputs or "")
    try:
        if definition.is_async:
            import asyncio

            from django_dbos.engine.workflows import execute_async

            return asyncio.run(execute_async(definition, ctx, args, kwargs, True))
        return execute(definition, ctx, args, kwargs, recovered=True)
    except DBOSWorkflowCancelledError as exc:  # reaches the test as an ordinary exception
        if exc.workflow_id == workflow_id:
            raise DBOSAwaitedWorkflowCancelledError(workflow_id) from None
        raise


def workflow_step_names(workflow_id: str) -> list[str]:
    """The recorded operations' names, in order (short names: the part after the last dot)."""
    return [step.function_name.rsplit(".", 1)[-1] for step in list_workflow_steps(workflow_id)]


@contextlib.contextmanager
def running_worker(
    queues: list[str] | None = None,
    threads: int = 8,
    executor_id: str | None = None,
    schedules: bool = True,
) -> Iterator[ProcessExecutor]:
    """Run what ``dbos_worker`` runs (recovery, adoption of dead executors' workflows, the
    dispatcher of ``queues``, default all declared, and with ``schedules`` the scheduler) on
    threads in this process until the block exits. Needs committed data (transactional
    tests)."""
    from django_dbos.engine.dispatcher import served_queues

    served_queues(queues)  # an unknown queue name fails here, not in the thread
    executor = reset_executor(executor_id)
    executor.threads = threads
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(executor, stop),
        kwargs={"grace_period": 5, "queues": queues, "schedules": schedules},
        daemon=True,
    )
    thread.start()
    try:
        yield executor
    finally:
        stop.set()
        thread.join(timeout=10)
        reset_executor()


class DBOSTestCaseMixin:
    """For ``TestCase`` classes: a fresh executor per test and step assertions."""

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        reset_executor()
        _next_start.set(StartOptions())

    def tearDown(self) -> None:
        get_executor().stop(retire=False)
        super().tearDown()  # type: ignore[misc]

    def assertWorkflowSteps(self, workflow_id: str, names: list[str]) -> None:
        self.assertEqual(workflow_step_names(workflow_id), names)  # type: ignore[attr-defined]


if pytest is not None:

    @pytest.fixture
    def dbos_executor() -> Iterator[ProcessExecutor]:
        """A fresh executor for the test, stopped afterwards."""
        executor = reset_executor()
        yield executor
        executor.stop(retire=False)

    @pytest.fixture
    def dbos_worker(transactional_db: Any) -> Iterator[ProcessExecutor]:
        """A worker running in this process for the duration of the test."""
        with running_worker() as executor:
            yield executor
