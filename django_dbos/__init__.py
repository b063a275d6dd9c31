"""Durable workflows for Django in the style of DBOS Transact.

Everything public is re-exported here; other modules are internal. Names load lazily (PEP 562)
so that importing ``django_dbos`` (e.g. from settings or ``apps.py``) never touches the models
before the app registry is ready.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_dbos.api.schedules import ScheduleInput
    from django_dbos.client import ClientScheduleInput, DBOSClient, EnqueueOptions
    from django_dbos.client_debouncer import DebouncerClient
    from django_dbos.context import (
        SetEnqueueOptions,
        SetWorkflowAttributes,
        SetWorkflowID,
        SetWorkflowTimeout,
    )
    from django_dbos.dbos import DBOS, StepOptions
    from django_dbos.debouncer import Debouncer
    from django_dbos.engine.communication import SendMessage
    from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
    from django_dbos.engine.records import StepInfo, WorkflowStatus
    from django_dbos.engine.scheduler import WorkflowSchedule
    from django_dbos.errors import (
        DBOSAwaitedWorkflowCancelledError,
        DBOSConfigurationError,
        DBOSConflictingWorkflowError,
        DBOSException,
        DBOSInvalidArgumentError,
        DBOSInvalidCronError,
        DBOSInvalidStartStepError,
        DBOSInvalidTimezoneError,
        DBOSMaxRecoveryAttemptsExceededError,
        DBOSMaxStepRetriesExceeded,
        DBOSNonExistentScheduleError,
        DBOSNonExistentWorkflowError,
        DBOSNotInWorkflowError,
        DBOSQueueDeduplicatedError,
        DBOSQueueNotFoundError,
        DBOSRecoveryError,
        DBOSScheduleExistsError,
        DBOSSerializationError,
        DBOSStreamTimeoutError,
        DBOSUnexpectedStepError,
        DBOSWorkflowCancelledError,
        DBOSWorkflowConflictIDError,
        DBOSWorkflowFunctionNotFoundError,
        DBOSWorkflowIDInUseError,
        DBOSWorkflowInterrupted,
    )
    from django_dbos.models import WorkflowStatusString
    from django_dbos.queues import Queue

_LAZY = {
    "DBOS": "django_dbos.dbos",
    "DBOSAwaitedWorkflowCancelledError": "django_dbos.errors",
    "ClientScheduleInput": "django_dbos.client_schedules",
    "DBOSClient": "django_dbos.client",
    "DBOSConfigurationError": "django_dbos.errors",
    "DBOSConflictingWorkflowError": "django_dbos.errors",
    "DBOSException": "django_dbos.errors",
    "DBOSScheduleExistsError": "django_dbos.errors",
    "DBOSNonExistentScheduleError": "django_dbos.errors",
    "DBOSInvalidTimezoneError": "django_dbos.errors",
    "DBOSInvalidCronError": "django_dbos.errors",
    "DBOSWorkflowIDInUseError": "django_dbos.errors",
    "DBOSInvalidStartStepError": "django_dbos.errors",
    "DBOSInvalidArgumentError": "django_dbos.errors",
    "DBOSMaxRecoveryAttemptsExceededError": "django_dbos.errors",
    "DBOSMaxStepRetriesExceeded": "django_dbos.errors",
    "DBOSNonExistentWorkflowError": "django_dbos.errors",
    "DBOSNotInWorkflowError": "django_dbos.errors",
    "DBOSQueueDeduplicatedError": "django_dbos.errors",
    "DBOSQueueNotFoundError": "django_dbos.errors",
    "DBOSRecoveryError": "django_dbos.errors",
    "DBOSSerializationError": "django_dbos.errors",
    "DBOSStreamTimeoutError": "django_dbos.errors",
    "DBOSUnexpectedStepError": "django_dbos.errors",
    "DBOSWorkflowCancelledError": "django_dbos.errors",
    "DBOSWorkflowConflictIDError": "django_dbos.errors",
    "DBOSWorkflowFunctionNotFoundError": "django_dbos.errors",
    "DBOSWorkflowInterrupted": "django_dbos.errors",
    "Debouncer": "django_dbos.debouncer",
    "DebouncerClient": "django_dbos.client_debouncer",
    "EnqueueOptions": "django_dbos.client",
    "Queue": "django_dbos.queues",
    "ScheduleInput": "django_dbos.api.schedules",
    "WorkflowSchedule": "django_dbos.engine.scheduler",
    "SendMessage": "django_dbos.engine.communication",
    "SetEnqueueOptions": "django_dbos.context",
    "SetWorkflowAttributes": "django_dbos.context",
    "SetWorkflowID": "django_dbos.context",
    "SetWorkflowTimeout": "django_dbos.context",
    "StepInfo": "django_dbos.engine.records",
    "StepOptions": "django_dbos.dbos",
    "WorkflowHandle": "django_dbos.engine.handles",
    "WorkflowHandleAsync": "django_dbos.engine.handles",
    "WorkflowStatus": "django_dbos.engine.records",
    "WorkflowStatusString": "django_dbos.models",
}


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'django_dbos' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DBOS",
    "ClientScheduleInput",
    "DBOSAwaitedWorkflowCancelledError",
    "DBOSClient",
    "DBOSConfigurationError",
    "DBOSConflictingWorkflowError",
    "DBOSException",
    "DBOSInvalidArgumentError",
    "DBOSInvalidCronError",
    "DBOSInvalidStartStepError",
    "DBOSInvalidTimezoneError",
    "DBOSMaxRecoveryAttemptsExceededError",
    "DBOSMaxStepRetriesExceeded",
    "DBOSNonExistentScheduleError",
    "DBOSNonExistentWorkflowError",
    "DBOSNotInWorkflowError",
    "DBOSQueueDeduplicatedError",
    "DBOSQueueNotFoundError",
    "DBOSRecoveryError",
    "DBOSScheduleExistsError",
    "DBOSSerializationError",
    "DBOSStreamTimeoutError",
    "DBOSUnexpectedStepError",
    "DBOSWorkflowCancelledError",
    "DBOSWorkflowConflictIDError",
    "DBOSWorkflowFunctionNotFoundError",
    "DBOSWorkflowIDInUseError",
    "DBOSWorkflowInterrupted",
    "Debouncer",
    "DebouncerClient",
    "EnqueueOptions",
    "Queue",
    "ScheduleInput",
    "SendMessage",
    "SetEnqueueOptions",
    "SetWorkflowAttributes",
    "SetWorkflowID",
    "SetWorkflowTimeout",
    "StepInfo",
    "StepOptions",
    "WorkflowHandle",
    "WorkflowHandleAsync",
    "WorkflowSchedule",
    "WorkflowStatus",
    "WorkflowStatusString",
]
