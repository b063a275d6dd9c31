"""Steps, retries with backoff, transactions (atomic + checkpoint) and durable sleep.

Every durable operation goes the same way: take the next ``function_id``; if a checkpoint is
recorded there, return (or raise) what it holds without running anything; otherwise check the
workflow may go on, run the body, and INSERT the checkpoint. Inside a step, steps are plain calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbos import serialization
from django_dbos.context import Checkpoint, WorkflowContext, current_workflow
from django_dbos.engine import system_db
from django_dbos.engine.threads import in_event_loop, run_blocking, to_thread
from django_dbos.errors import (
    DBOSConfigurationError,
    DBOSMaxStepRetriesExceeded,
    DBOSSerializationError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowConflictIDError,
    DBOSWorkflowInterrupted,
)
from django_dbos.models import WorkflowStatusString, now_ms
from django_dbos.signals import send_after_commit, step_finished

logger = logging.getLogger(__name__)

SLEEP_NAME = "DBOS.sleep"
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_TRANSACTION_ATTEMPTS = 10


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StepConfig:
    name: str
    retries_allowed: bool = False
    interval_seconds: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TransactionConfig:
    name: str
    using: str
    isolation_level: str | None = None


# -- the shared core ---------------------------------------------------------------------------


def begin_operation(ctx: WorkflowContext, name: str) -> tuple[int, Checkpoint | None]:
    """Take the next function_id; its checkpoint if one is recorded, else make sure we may run."""
    function_id = ctx.next_function_id()
    checkpoint = ctx.replay(function_id, name)
    if checkpoint is None:
        ctx.raise_if_stopped()
    return function_id, checkpoint


def replayed(checkpoint: Checkpoint) -> Any:
    if checkpoint.error is not None:
        raise serialization.deserialize_exception(checkpoint.error)
    return serialization.deserialize(checkpoint.output)


def refused_checkpoint(ctx: WorkflowContext, function_id: int) -> BaseException:
    """Why a checkpoint INSERT wrote nothing: the workflow was cancelled, or ran elsewhere."""
    summary = system_db.get_summary(ctx.workflow_id)
    if summary is None or summary.status == WorkflowStatusString.CANCELLED:
        return DBOSWorkflowCancelledError(ctx.workflow_id)
    return DBOSWorkflowConflictIDError(ctx.workflow_id, function_id)


def encode_outcome(value: Any, error: BaseException | None) -> tuple[str | None, str | None, Any]:
    """(output, error) texts for the checkpoint, and the error to raise after recording (if any).

    An unserializable return value is recorded as the step's DBOSSerializationError, so replay
    raises the same error instead of running the step again."""
    if error is None:
        try:
            return serialization.serialize(value), None, None
        except DBOSSerializationError as exc:
            error = exc
    return None, serialization.serialize_exception(error), error


def announce_step(ctx: WorkflowContext, function_id: int, name: str, error: Any) -> None:
    send_after_commit(
        step_finished,
        sender=name,
        workflow_id=ctx.workflow_id,
        function_id=function_id,
        name=name,
        error=error,
    )


def crash_if_simulated(ctx: WorkflowContext, function_id: int) -> None:
    """``testing.simulate_crash(after_step=n)``: die like a killed process once step n is in."""
    if ctx.crash_after_step is not None and function_id >= ctx.crash_after_step:
        raise DBOSWorkflowInterrupted(ctx.workflow_id, "simulated crash")


def after_checkpoint(ctx: WorkflowContext, function_id: int, name: str, error: Any) -> None:
    announce_step(ctx, function_id, name, error)
    crash_if_simulated(ctx, function_id)


def record(
    ctx: WorkflowContext,
    function_id: int,
    name: str,
    started_ms: int,
    value: Any = None,
    error: BaseException | None = None,
) -> Any:
    """Checkpoint an operation's outcome, then return the value or raise the error."""
    output, error_text, raised = encode_outcome(value, error)
    if not system_db.record_operation(
        ctx.workflow_id,
        function_id,
        name,
        output=output,
        error=error_text,
        started_at_ms=started_ms,
    ):
        raise refused_checkpoint(ctx, function_id)
    after_checkpoint(ctx, function_id, name, raised)
    if raised is not None:
        raise raised
    return value


class _Attempts:
    """The retry policy of one step execution, shared by the sync and async runners: it says
    how long to back off after a failure, or that the attempts are spent."""

    def __init__(self, ctx: WorkflowContext, config: StepConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.allowed = config.max_attempts if config.retries_allowed else 1
        self.errors: list[Exception] = []
        self._delay = config.interval_seconds

    def failed(self, exc: Exception) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none."""
        self.errors.append(exc)
        if len(self.errors) >= self.allowed:
            return None
        delay = self._delay
        self._delay *= self.config.backoff_rate
        logger.warning(
            "Step %s of workflow %s failed (attempt %d of %d): %r; retrying in %.2fs",
            self.config.name,
            self.ctx.workflow_id,
            len(self.errors),
            self.allowed,
            exc,
            delay,
            extra={"workflow_id": self.ctx.workflow_id, "step": self.config.name},
        )
        return delay

    def final_error(self) -> Exception:
        if self.config.retries_allowed:
            return DBOSMaxStepRetriesExceeded(self.config.name, len(self.errors), self.errors)
        return self.errors[-1]


# -- steps -------------------------------------------------------------------------------------


def run_step(config: StepConfig, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        return fn(*args, **kwargs)
    if in_event_loop():
        return run_blocking(run_step, config, fn, args, kwargs)
    function_id, checkpoint = begin_operation(ctx, config.name)
    if checkpoint is not None:
        return replayed(checkpoint)
    started, attempts = now_ms(), _Attempts(ctx, config)
    ctx.in_step, ctx.step_id = True, function_id
    try:
        while True:
            try:
                ctx.step_writes = 0  # stream writes are numbered per attempt
                value = fn(*args, **kwargs)
                break
            except Exception as exc:
                delay = attempts.failed(exc)
                if delay is None:
                    error = attempts.final_error()
                    return record(ctx, function_id, config.name, started, error=error)
                ctx.wait(delay)
    finally:
        ctx.in_step = False
    return record(ctx, function_id, config.name, started, value)


async def run_step_async(config: StepConfig, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        return await _call_maybe_async(fn, args, kwargs)
    function_id, checkpoint = begin_operation(ctx, config.name)
    if checkpoint is not None:
        return replayed(checkpoint)
    started, attempts = now_ms(), _Attempts(ctx, config)
    ctx.in_step, ctx.step_id = True, function_id
    try:
        while True:
            try:
                ctx.step_writes = 0
                value = await _call_maybe_async(fn, args, kwargs)
                break
            except Exception as exc:
                delay = attempts.failed(exc)
                if delay is None:
                    error = attempts.final_error()
                    return await to_thread(
                        record, ctx, function_id, config.name, started, None, error
                    )
                await _wait_async(ctx, delay)
    finally:
        ctx.in_step = False
    return await to_thread(record, ctx, function_id, config.name, started, value)


async def _call_maybe_async(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    result = fn(*args, **kwargs)
    if asyncio.iscoroutine(result):
        return await result
    return result


async def _wait_async(ctx: WorkflowContext, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        ctx.raise_if_stopped()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, 0.1))


# -- transactions ------------------------------------------------------------------------------


def _retryable(exc: DatabaseError) -> bool:
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate in _RETRYABLE_SQLSTATES or "database is locked" in str(exc)


class _CheckpointRefused(Exception):
    """Rolls the transaction back when its checkpoint could not be written."""


@contextmanager
def _atomic(config: TransactionConfig) -> Iterator[BaseDatabaseWrapper]:
    """``transaction.atomic`` at the requested isolation level (PostgreSQL; SQLite transactions
    are always serializable). A level can only be set on an outermost transaction."""
    conn = connections[config.using]
    if config.isolation_level and conn.vendor == "postgresql" and conn.in_atomic_block:
        raise DBOSConfigurationError(
            f"Transaction {config.name!r} asks for isolation_level="
            f"{config.isolation_level!r} but runs inside an outer transaction.atomic() (or "
            "ATOMIC_REQUESTS), whose isolation level is already fixed. Call it outside the "
            "atomic block, or drop isolation_level."
        )
    with transaction.atomic(using=config.using):
        if config.isolation_level and conn.vendor == "postgresql":
            with conn.cursor() as cursor:
                cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {config.isolation_level}")
        yield conn


def run_transaction(config: TransactionConfig, fn: Callable[..., Any], args: Any, kwargs: Any):
    """The body and its checkpoint commit together: the ORM writes happen exactly once."""
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        with _atomic(config):
            return fn(*args, **kwargs)
    if in_event_loop():
        return run_blocking(run_transaction, config, fn, args, kwargs)
    function_id, checkpoint = begin_operation(ctx, config.name)
    if checkpoint is not None:
        return replayed(checkpoint)
    started = now_ms()
    conn = connections[config.using]
    nested = conn.in_atomic_block
    for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
        body_done = False
        try:
            with _atomic(config):
                ctx.in_step, ctx.step_id, ctx.step_writes = True, function_id, 0
                try:
                    value = fn(*args, **kwargs)
                finally:
                    ctx.in_step = False
                body_done = True
                output = serialization.serialize(value)
                if not system_db.record_operation(
                    ctx.workflow_id,
                    function_id,
                    config.name,
                    output=output,
                    started_at_ms=started,
                    using=conn,
                ):
                    raise _CheckpointRefused
        except _CheckpointRefused:
            raise refused_checkpoint(ctx, function_id) from None
        except DBOSConfigurationError:
            raise  # a programming error, not the transaction's outcome: nothing is recorded
        except DatabaseError as exc:
            if body_done and not nested and _committed_anyway(ctx, function_id, config.using):
                break  # the connection died around COMMIT, but the checkpoint is there
            if nested or attempt == _TRANSACTION_ATTEMPTS or not _retryable(exc):
                return record(ctx, function_id, config.name, started, error=exc)
            logger.info("Transaction %s hit %r; retrying", config.name, exc)
            ctx.wait(min(0.01 * 2**attempt, 1.0))
            continue
        except Exception as exc:  # the body (or its return value) failed: rolled back
            return record(ctx, function_id, config.name, started, error=exc)
        break
    announce_step(ctx, function_id, config.name, None)
    crash_if_simulated(ctx, function_id)
    return value


def _committed_anyway(ctx: WorkflowContext, function_id: int, using: str) -> bool:
    connections[using].close()
    try:
        return function_id in system_db.load_checkpoints(ctx.workflow_id)
    except DatabaseError:
        return False


# -- durable sleep -----------------------------------------------------------------------------


def _sleep_prologue(ctx: WorkflowContext, seconds: float) -> float:
    """Record the wake-up time once; the seconds left until it."""
    function_id, checkpoint = begin_operation(ctx, SLEEP_NAME)
    if checkpoint is not None:
        wake_ms = replayed(checkpoint)
    else:
        wake_ms = now_ms() + int(seconds * 1000)
        record(ctx, function_id, SLEEP_NAME, now_ms(), wake_ms)
    return max(0.0, (wake_ms - now_ms()) / 1000)


def durable_sleep(seconds: float) -> None:
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        time.sleep(seconds)
        return
    if in_event_loop():
        run_blocking(durable_sleep, seconds)
        return
    ctx.wait(_sleep_prologue(ctx, seconds))


async def durable_sleep_async(seconds: float) -> None:
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        await asyncio.sleep(seconds)
        return
    remaining = await to_thread(_sleep_prologue, ctx, seconds)
    await _wait_async(ctx, remaining)
