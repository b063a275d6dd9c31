"""The one workflow that runs every task: ``django_dbos.tasks.run_task``.

Autodiscovered like any app's ``workflows`` module (and imported by the app's ``ready()``), so
every process with ``django_dbos.tasks`` installed registers it at start-up and computes the
same application version. The Tasks API is imported only when a task runs: this module loads
even where the framework is missing (the system check reports that).
"""

from __future__ import annotations

import logging
from typing import Any

from django_dbos.dbos import DBOS
from django_dbos.errors import DBOSWorkflowConflictIDError

logger = logging.getLogger(__name__)


@DBOS.workflow(name="django_dbos.tasks.run_task")
def run_task(
    task_path: str, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> Any:
    """Import the ``Task`` at ``task_path`` and call its function (sync, or async through
    ``Task.call``) as the body of this workflow, so the ``@DBOS.step``s it calls are
    checkpointed. Sends the Tasks API's ``task_started`` / ``task_finished`` signals, returns
    the JSON-normalized return value, and on failure publishes the error event before the
    error is recorded."""
    from django_dbos.engine.introspection import get_workflow_status
    from django_dbos.tasks import compat
    from django_dbos.tasks.backend import DBOSTaskBackend
    from django_dbos.tasks.results import ERROR_EVENT, build_result, error_of, load_task

    task = load_task(task_path, options)
    backend = compat.task_backends[task.backend]
    if not isinstance(backend, DBOSTaskBackend):
        raise compat.InvalidTask(
            f"Task {task_path} names backend {task.backend!r}, which is not a DBOSTaskBackend."
        )
    workflow_id = DBOS.workflow_id or ""
    status = get_workflow_status(workflow_id)
    if status is None:  # deleted while starting: nothing to describe or run
        raise compat.TaskResultDoesNotExist(workflow_id)
    running = build_result(
        status, task=task, result_status=compat.TaskResultStatus.RUNNING, errors=[]
    )
    sender = type(backend)
    compat.task_started.send(sender=sender, task_result=running)
    try:
        if task.takes_context:
            value = task.call(compat.TaskContext(task_result=running), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        value = compat.normalize_json(value)
    except DBOSWorkflowConflictIDError:
        raise  # another execution owns this workflow: it reports the outcome
    except Exception as exc:
        error = error_of(exc)
        try:
            DBOS.set_event(
                ERROR_EVENT,
                {"exception_class_path": error.exception_class_path, "traceback": error.traceback},
            )
        except Exception:
            logger.exception("Task %s: could not record its error details", workflow_id)
        _set(running, status=compat.TaskResultStatus.FAILED, errors=[error])
        compat.task_finished.send(sender=sender, task_result=running)
        raise
    _set(running, status=compat.TaskResultStatus.SUCCESSFUL, _return_value=value)
    compat.task_finished.send(sender=sender, task_result=running)
    return value


def _set(result: Any, **changes: Any) -> None:
    """Update the in-memory ``TaskResult`` the signals carry (frozen, as Django's backends
    update theirs); ``finished_at`` is now."""
    from django.utils import timezone

    for name, value in {"finished_at": timezone.now(), **changes}.items():
        object.__setattr__(result, name, value)
