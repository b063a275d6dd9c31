"""The system tables: the only schema django_dbos writes.

Column names follow DBOS's system tables so that DBOS's SQL recipes carry over. Serialized values
are text (JSON text by default, so ``::jsonb`` works). Timestamps are epoch milliseconds, as in
DBOS. Each index is declared beside the query it serves.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:  # django-stubs' fields are generic in what they take and give
    _TextField = models.TextField[Any, Any]
else:
    _TextField = models.TextField


def now_ms() -> int:
    return int(time.time() * 1000)


class JSONTextField(_TextField):
    """A JSON value in a plain text column. Django's ``JSONField`` needs SQLite's JSON1
    extension, which some Python builds lack (their ``manage.py`` would then stop on system
    check ``fields.E180``); these columns are only ever read whole, never queried into."""

    # what django-stubs' mypy plugin takes the field to accept and give (any JSON value)
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else json.loads(value)

    def to_python(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value)


class WorkflowStatusString(models.TextChoices):
    ENQUEUED = "ENQUEUED"
    DELAYED = "DELAYED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"


TERMINAL_STATUSES = frozenset(
    {
        WorkflowStatusString.SUCCESS,
        WorkflowStatusString.ERROR,
        WorkflowStatusString.CANCELLED,
        WorkflowStatusString.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    }
)


class WorkflowStatusQuerySet(models.QuerySet["WorkflowStatus"]):
    def pending(self) -> WorkflowStatusQuerySet:
        return self.filter(status=WorkflowStatusString.PENDING)

    def for_executor(self, executor_id: str) -> WorkflowStatusQuerySet:
        return self.filter(executor_id=executor_id)

    def finished(self) -> WorkflowStatusQuerySet:
        return self.filter(status__in=TERMINAL_STATUSES)


class WorkflowStatus(models.Model):
    """One row per workflow: its identity, inputs, outcome and where it runs."""

    workflow_uuid = models.CharField(primary_key=True, max_length=255)
    status = models.CharField(max_length=32, choices=WorkflowStatusString.choices)
    name = models.CharField(max_length=255)
    class_name = models.CharField(max_length=255, null=True, blank=True)
    config_name = models.CharField(max_length=255, null=True, blank=True)
    inputs = models.TextField(null=True, blank=True)
    output = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    executor_id = models.CharField(max_length=255, null=True, blank=True)
    application_version = models.CharField(max_length=255, null=True, blank=True)
    recovery_attempts = models.IntegerField(default=0)
    queue_name = models.CharField(max_length=255, null=True, blank=True)
    queue_partition_key = models.CharField(max_length=255, null=True, blank=True)
    priority = models.IntegerField(default=0)
    deduplication_id = models.CharField(max_length=255, null=True, blank=True)
    workflow_timeout_ms = models.BigIntegerField(null=True, blank=True)
    workflow_deadline_epoch_ms = models.BigIntegerField(null=True, blank=True)
    started_at_epoch_ms = models.BigIntegerField(null=True, blank=True)
    delay_until_epoch_ms = models.BigIntegerField(null=True, blank=True)
    parent_workflow_id = models.CharField(max_length=255, null=True, blank=True)
    forked_from = models.CharField(max_length=255, null=True, blank=True)
    authenticated_user = models.CharField(max_length=255, null=True, blank=True)
    attributes = models.TextField(null=True, blank=True)
    created_at = models.BigIntegerField(default=now_ms)
    updated_at = models.BigIntegerField(default=now_ms)

    objects = WorkflowStatusQuerySet.as_manager()

    class Meta:
        db_table = "dbos_workflow_status"
        verbose_name = "workflow"
        verbose_name_plural = "workflows"
        indexes = [
            # the admin list and list_workflows: newest first within a status
            models.Index(fields=["status", "created_at"], name="dbos_wf_status_created"),
            models.Index(fields=["created_at"], name="dbos_wf_created"),
            # filtering by name, newest first (admin, list_workflows)
            models.Index(fields=["name", "created_at"], name="dbos_wf_name_created"),
            # recovery: PENDING workflows of one executor
            models.Index(fields=["executor_id", "status"], name="dbos_wf_executor_status"),
            models.Index(fields=["parent_workflow_id"], name="dbos_wf_parent"),
            # the dispatcher: a queue's ENQUEUED rows in priority, then FIFO order
            models.Index(
                fields=["queue_name", "status", "priority", "created_at"],
                name="dbos_wf_dequeue",
            ),
            # the rate limiter: a queue's starts within the last period
            models.Index(
                fields=["queue_name", "started_at_epoch_ms"], name="dbos_wf_queue_started"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["queue_name", "deduplication_id"], name="dbos_wf_queue_dedup"
            )
        ]
        permissions = [
            ("cancel_workflowstatus", "Can cancel workflows"),
            ("resume_workflowstatus", "Can resume workflows"),
            ("fork_workflowstatus", "Can fork workflows"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.workflow_uuid} ({self.status})"

    @property
    def duration_ms(self) -> int | None:
        if self.status in TERMINAL_STATUSES:
            return self.updated_at - (self.started_at_epoch_ms or self.created_at)
        return None


class OperationOutput(models.Model):
    """One row per completed durable operation (step, transaction, sleep, child start, ...)."""

    # No database-level constraint and no index of its own: the checkpoint INSERT already
    # checks the workflow row (and that it is PENDING) in its WHERE EXISTS, the unique
    # (workflow, function_id) index serves every lookup, and a foreign-key check would lock
    # the status row on every step. Deleting a workflow deletes its steps (ORM cascade, gc).
    workflow = models.ForeignKey(
        WorkflowStatus,
        on_delete=models.CASCADE,
        db_column="workflow_uuid",
        related_name="operations",
        db_constraint=False,
        db_index=False,
    )
    function_id = models.IntegerField()
    function_name = models.CharField(max_length=255)
    output = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    child_workflow_id = models.CharField(max_length=255, null=True, blank=True)
    started_at_epoch_ms = models.BigIntegerField(null=True, blank=True)
    completed_at_epoch_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "dbos_operation_outputs"
        verbose_name = "step"
        constraints = [
            # replay loads a workflow's checkpoints through this index in one query
            models.UniqueConstraint(
                fields=["workflow", "function_id"], name="dbos_op_workflow_function"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} #{self.function_id} {self.function_name}"


class Notification(models.Model):
    """A message sent to a workflow, waiting to be received (deleted when consumed)."""

    destination = models.ForeignKey(
        WorkflowStatus,
        on_delete=models.CASCADE,
        db_column="destination_uuid",
        related_name="notifications",
    )
    topic = models.CharField(max_length=255, null=True, blank=True)
    message = models.TextField()
    message_uuid = models.CharField(max_length=255, unique=True)
    created_at_epoch_ms = models.BigIntegerField(default=now_ms)

    class Meta:
        db_table = "dbos_notifications"
        indexes = [
            models.Index(
                fields=["destination", "topic", "created_at_epoch_ms"], name="dbos_notif_dest"
            )
        ]

    def __str__(self) -> str:
        return f"message to {self.destination_id} ({self.topic or 'no topic'})"


class WorkflowEvent(models.Model):
    """The current value of a workflow's event key."""

    workflow = models.ForeignKey(
        WorkflowStatus, on_delete=models.CASCADE, db_column="workflow_uuid", related_name="events"
    )
    key = models.CharField(max_length=255)
    value = models.TextField()

    class Meta:
        db_table = "dbos_workflow_events"
        constraints = [
            models.UniqueConstraint(fields=["workflow", "key"], name="dbos_event_workflow_key")
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} {self.key}"


class WorkflowEventHistory(models.Model):
    """Every value an event key took, by the function_id that set it (fork copies these)."""

    workflow = models.ForeignKey(
        WorkflowStatus,
        on_delete=models.CASCADE,
        db_column="workflow_uuid",
        related_name="event_history",
    )
    function_id = models.IntegerField()
    key = models.CharField(max_length=255)
    value = models.TextField()

    class Meta:
        db_table = "dbos_workflow_events_history"
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "function_id", "key"], name="dbos_event_hist_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} #{self.function_id} {self.key}"


class StreamEntry(models.Model):
    """One value written to a workflow's stream; a close marker ends the stream.

    ``(function_id, seq)`` names the write: the workflow operation (or step) that wrote it and
    its number within that operation, so a write repeated by a re-run step or a replay is
    recognised and skipped (writes are exactly once)."""

    workflow = models.ForeignKey(
        WorkflowStatus, on_delete=models.CASCADE, db_column="workflow_uuid", related_name="streams"
    )
    key = models.CharField(max_length=255)
    offset = models.IntegerField()
    value = models.TextField()
    function_id = models.IntegerField(default=0)
    seq = models.IntegerField(default=0)

    class Meta:
        db_table = "dbos_streams"
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "key", "offset"], name="dbos_stream_unique"
            ),
            models.UniqueConstraint(
                fields=["workflow", "key", "function_id", "seq"], name="dbos_stream_write_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} {self.key}[{self.offset}]"


class QueueConfig(models.Model):
    """A declared queue's configuration, upserted by every process that declares it."""

    name = models.CharField(primary_key=True, max_length=255)
    concurrency = models.IntegerField(null=True, blank=True)
    worker_concurrency = models.IntegerField(null=True, blank=True)
    limiter_limit = models.IntegerField(null=True, blank=True)
    limiter_period_sec = models.FloatField(null=True, blank=True)
    priority_enabled = models.BooleanField(default=False)
    partition_queue = models.BooleanField(default=False)
    partition_concurrency = models.IntegerField(null=True, blank=True)
    partition_limiter_limit = models.IntegerField(null=True, blank=True)
    partition_limiter_period_sec = models.FloatField(null=True, blank=True)
    updated_at = models.BigIntegerField(default=now_ms)

    class Meta:
        db_table = "dbos_queues"
        verbose_name = "queue"

    def __str__(self) -> str:
        return self.name


class ScheduleStatus(models.TextChoices):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class Schedule(models.Model):
    """A managed cron schedule."""

    schedule_name = models.CharField(max_length=255, unique=True)
    workflow_name = models.CharField(max_length=255)
    schedule = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16, choices=ScheduleStatus.choices, default=ScheduleStatus.ACTIVE
    )
    context = models.TextField(null=True, blank=True)
    cron_timezone = models.CharField(max_length=64, null=True, blank=True)
    queue_name = models.CharField(max_length=255, null=True, blank=True)
    automatic_backfill = models.BooleanField(default=False)
    last_fired_at = models.BigIntegerField(null=True, blank=True)
    created_at = models.BigIntegerField(default=now_ms)
    updated_at = models.BigIntegerField(default=now_ms)

    class Meta:
        db_table = "dbos_schedules"
        permissions = [
            ("pause_schedule", "Can pause and resume schedules"),
            ("trigger_schedule", "Can trigger schedules now"),
            ("backfill_schedule", "Can backfill schedules"),
        ]

    def __str__(self) -> str:
        return self.schedule_name


class Executor(models.Model):
    """A process that runs workflows; its heartbeat says it is alive."""

    executor_id = models.CharField(primary_key=True, max_length=255)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    application_version = models.CharField(max_length=255, null=True, blank=True)
    started_at = models.BigIntegerField(default=now_ms)
    last_heartbeat = models.BigIntegerField(default=now_ms)
    queues = JSONTextField(null=True, blank=True)
    """The names of the queues this executor's dispatcher serves (a worker); None for a process
    that runs no dispatcher (a web process), which claims nothing from any queue."""

    class Meta:
        db_table = "dbos_executors"
        indexes = [models.Index(fields=["last_heartbeat"], name="dbos_executor_heartbeat")]

    def __str__(self) -> str:
        return self.executor_id
