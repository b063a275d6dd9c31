"""``DBOSClient``'s arguments: ``EnqueueOptions`` checked into the engine's ``StartOptions``
(all of it before anything is written), and the queue a client enqueues, resumes or forks onto
(declared in this process, or stored by another one in ``dbos_queues``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from django_dbos.errors import DBOSInvalidArgumentError, DBOSQueueNotFoundError

if TYPE_CHECKING:
    from django_dbos.context import StartOptions
    from django_dbos.models import QueueConfig
    from django_dbos.queues import Queue

_MAX_PRIORITY = 2**31 - 1


class _RequiredEnqueueOptions(TypedDict):
    workflow_name: str
    queue_name: str


class EnqueueOptions(_RequiredEnqueueOptions, total=False):
    """``DBOSClient.enqueue``'s options (DBOS's keys): a dict, or ``EnqueueOptions(...)``.

    ``workflow_name`` (the registered name, e.g. ``"orders.workflows.process_order"`` or the
    ``name=`` given to ``@DBOS.workflow``) and ``queue_name`` are required. ``workflow_id``
    is the idempotency key (an existing ID returns that workflow's handle);
    ``workflow_timeout`` in seconds counts from when a worker starts it; ``app_version``: only
    workers of that version run it (default: whichever worker claims it). The others are
    ``SetEnqueueOptions``'s and ``SetWorkflowAttributes``' options.
    """

    workflow_id: str
    app_version: str
    workflow_timeout: float
    deduplication_id: str
    priority: int
    queue_partition_key: str
    delay_seconds: float
    authenticated_user: str
    attributes: dict[str, Any]


_OPTION_KEYS = EnqueueOptions.__required_keys__ | EnqueueOptions.__optional_keys__


def check_text(argument: str, value: Any, operation: str) -> str:
    """``value`` if it fits a name column (a non-empty string of at most 255 characters)."""
    if not isinstance(value, str) or not value or len(value) > 255:
        raise DBOSInvalidArgumentError(
            argument, value, "a non-empty string of at most 255 characters", operation=operation
        )
    return value


def check_number(argument: str, value: Any, operation: str, *, zero: bool = False) -> float:
    """``value`` as seconds: a finite positive number (or 0 too, with ``zero``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value  # NaN
        or value in (float("inf"), float("-inf"))
        or value < 0
        or (value == 0 and not zero)
    ):
        expected = "a number of seconds, 0 or more" if zero else "a positive number of seconds"
        raise DBOSInvalidArgumentError(argument, value, expected, operation=operation)
    return float(value)


def start_options(options: Any) -> StartOptions:
    """``options`` checked (all of it, before anything is written) as the engine's options."""
    from django_dbos.context import StartOptions, check_attributes

    op = "DBOSClient.enqueue"
    if not isinstance(options, Mapping):
        raise DBOSInvalidArgumentError("options", options, "an EnqueueOptions dict", operation=op)
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise DBOSInvalidArgumentError(
            "options", unknown, f"keys among {sorted(_OPTION_KEYS)}", operation=op
        )
    for key in sorted(EnqueueOptions.__required_keys__):
        check_text(key, options.get(key), op)
    text = {
        key: check_text(key, options[key], op) if options.get(key) is not None else None
        for key in (
            "workflow_id",
            "app_version",
            "deduplication_id",
            "queue_partition_key",
            "authenticated_user",
        )
    }
    priority = options.get("priority")
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not 0 <= priority <= _MAX_PRIORITY
    ):
        raise DBOSInvalidArgumentError(
            "priority", priority, f"an int from 0 to {_MAX_PRIORITY}", operation=op
        )
    delay, timeout = options.get("delay_seconds"), options.get("workflow_timeout")
    attributes = options.get("attributes")
    return StartOptions(
        workflow_id=text["workflow_id"],
        app_version=text["app_version"],
        deduplication_id=text["deduplication_id"],
        queue_partition_key=text["queue_partition_key"],
        authenticated_user=text["authenticated_user"],
        priority=priority,
        delay_seconds=None
        if delay is None
        else check_number("delay_seconds", delay, op, zero=True),
        timeout_seconds=None if timeout is None else check_number("workflow_timeout", timeout, op),
        attributes=None if attributes is None else check_attributes(attributes),
    )


# -- queues ----------------------------------------------------------------------------------


def find_queue(name: str) -> Queue | QueueConfig:
    """The queue to enqueue on: declared in this process (its configuration is stored now if it
    was not yet), or stored by another process in ``dbos_queues``."""
    from django_dbos.conf import dbos_settings
    from django_dbos.engine.queues import store_config
    from django_dbos.models import QueueConfig
    from django_dbos.queues import INTERNAL_QUEUE_NAME
    from django_dbos.registry import registry

    declared = registry.queues.get(name)
    if declared is not None:
        store_config(declared)
        return declared
    rows = QueueConfig.objects.using(dbos_settings().DATABASE)
    stored = rows.filter(name=name).first()
    if stored is None:
        known = set(rows.values_list("name", flat=True)) | set(registry.queues)
        raise DBOSQueueNotFoundError(name, sorted(known - {INTERNAL_QUEUE_NAME}))
    return stored


def target_queue(name: str | None, partition_key: str | None) -> Queue | QueueConfig:
    """Where resume and fork put a workflow: the internal queue (every worker serves it) unless
    ``name`` says otherwise."""
    from django_dbos.queues import internal_queue

    queue = internal_queue() if name is None else find_queue(name)
    if queue.partition_queue and partition_key is None:
        raise DBOSInvalidArgumentError(
            "queue_partition_key",
            None,
            f"given: queue {queue.name!r} is partitioned",
            operation="DBOSClient",
        )
    return queue
