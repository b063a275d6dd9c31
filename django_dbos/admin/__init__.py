"""The Django admin for workflows, executors, queues and schedules: read-only rows, for staff with
view permission; schedule operations (actions, backfill) each need their own permission.

Importing this package (as ``admin.autodiscover()`` does) registers the four admins:

- ``workflows``: the ``WorkflowStatus`` admin, its filter, change list and paginator, and the
  queries that keep it fast on a system table of millions of rows;
- ``executors``: the ``Executor`` admin and its "alive" filter;
- ``queues``: the ``QueueConfig`` admin: each queue's flow control, backlog and live workers;
- ``schedules``: the ``Schedule`` admin: pause / resume / trigger actions and a backfill form;
- ``base``: ``ReadOnlyAdmin``, the read-only base they share;
- ``display``: formatting they share (local times from epoch ms, durations, decoded values).

The names below are re-exported so ``django_dbos.admin.<name>`` keeps working.
"""

from django_dbos.admin.base import ReadOnlyAdmin
from django_dbos.admin.display import (
    PREVIEW_CHARS,
    Decoded,
    decode,
    format_duration,
    local_time,
    render_decoded,
)
from django_dbos.admin.executors import ExecutorAdmin, ExecutorAliveFilter
from django_dbos.admin.queues import (
    QueueBacklog,
    QueueConfigAdmin,
    live_servers,
    queue_backlogs,
)
from django_dbos.admin.schedules import BackfillForm, ScheduleAdmin
from django_dbos.admin.workflows import (
    NAME_FILTER_LIMIT,
    CappedCountPaginator,
    StepRow,
    WorkflowChangeList,
    WorkflowNameFilter,
    WorkflowStatusAdmin,
    distinct_workflow_names,
    workflow_id_prefix,
)

__all__ = [
    "NAME_FILTER_LIMIT",
    "PREVIEW_CHARS",
    "BackfillForm",
    "CappedCountPaginator",
    "Decoded",
    "ExecutorAdmin",
    "ExecutorAliveFilter",
    "QueueBacklog",
    "QueueConfigAdmin",
    "ReadOnlyAdmin",
    "ScheduleAdmin",
    "StepRow",
    "WorkflowChangeList",
    "WorkflowNameFilter",
    "WorkflowStatusAdmin",
    "decode",
    "distinct_workflow_names",
    "format_duration",
    "live_servers",
    "local_time",
    "queue_backlogs",
    "render_decoded",
    "workflow_id_prefix",
]
