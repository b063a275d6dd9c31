"""The ``DBOS`` facade: decorators and operations, thin over ``engine/``."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from django_dbos.api.communication import CommunicationAPI
from django_dbos.api.control import ControlAPI
from django_dbos.api.introspection import IntrospectionAPI
from django_dbos.api.schedules import SchedulesAPI
from django_dbos.conf import dbos_settings
from django_dbos.context import current_workflow
from django_dbos.engine import steps, workflows
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.errors import DBOSConfigurationError, DBOSException
from django_dbos.registry import WorkflowDefinition, default_name, registry

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")

_ISOLATION_LEVELS = {"SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED", "READ UNCOMMITTED"}


class StepOptions(TypedDict, total=False):
    """Options for ``DBOS.run_step`` (the same as ``@DBOS.step``'s arguments)."""

    name: str
    retries_allowed: bool
    interval_seconds: float
    max_attempts: int
    backoff_rate: float


def _no_bare_use(func: Any, decorator: str) -> None:
    if func is not None:
        raise DBOSConfigurationError(
            f"Use @DBOS.{decorator}() with parentheses (options are keyword arguments)."
        )


def _check_name(name: str | None, what: str) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        raise DBOSConfigurationError(f"{what} name must be a non-empty string, not {name!r}.")


_STEP_OPTIONS = frozenset(StepOptions.__annotations__) - {"name"}


def _step_config(name: str, options: dict[str, Any]) -> steps.StepConfig:
    unknown = set(options) - _STEP_OPTIONS
    if unknown:
        raise DBOSConfigurationError(
            f"Step {name!r}: unknown option(s) {sorted(unknown)}; "
            f"the options are {sorted(_STEP_OPTIONS | {'name'})}."
        )
    config = steps.StepConfig(name=name, **options)
    if not isinstance(config.max_attempts, int) or config.max_attempts < 1:
        raise DBOSConfigurationError(
            f"Step {name!r}: max_attempts must be an integer of at least 1, "
            f"not {config.max_attempts!r}."
        )
    if not isinstance(config.interval_seconds, int | float) or config.interval_seconds < 0:
        raise DBOSConfigurationError(
            f"Step {name!r}: interval_seconds must be 0 or more, not {config.interval_seconds!r}."
        )
    if not isinstance(config.backoff_rate, int | float) or config.backoff_rate < 1:
        raise DBOSConfigurationError(
            f"Step {name!r}: backoff_rate must be 1 or more, not {config.backoff_rate!r}."
        )
    return config


def _definition(fn: Callable[..., Any]) -> WorkflowDefinition:
    definition = getattr(fn, "__dbos_workflow__", None)
    if definition is None:
        raise DBOSException(
            f"{getattr(fn, '__qualname__', fn)!r} is not a workflow: decorate it with "
            "@DBOS.workflow() first."
        )
    return definition


class _DBOSMeta(type):
    """Class-level properties (``DBOS.workflow_id``, ``DBOS.step_id``), as in DBOS."""

    @property
    def workflow_id(cls) -> str | None:
        ctx = current_workflow()
        return ctx.workflow_id if ctx else None

    @property
    def step_id(cls) -> int | None:
        ctx = current_workflow()
        return ctx.step_id if ctx and ctx.in_step else None

    @property
    def logger(cls) -> logging.Logger:
        return logging.getLogger("django_dbos.workflows")


class DBOS(CommunicationAPI, ControlAPI, IntrospectionAPI, SchedulesAPI, metaclass=_DBOSMeta):
    """Durable workflows on the Django database. Everything is a class-level call; the
    operations live in ``django_dbos/api/`` by capability."""

    # -- decorators ------------------------------------------------------------------------

    @staticmethod
    def workflow(
        _func: Any = None, *, name: str | None = None, max_recovery_attempts: int | None = None
    ) -> Callable[[F], F]:
        """Make a function a durable workflow: its steps are checkpointed and it survives
        crashes. Sync and ``async def`` functions are both supported."""
        _no_bare_use(_func, "workflow")
        _check_name(name, "Workflow")
        if max_recovery_attempts is not None and (
            not isinstance(max_recovery_attempts, int) or max_recovery_attempts < 0
        ):
            raise DBOSConfigurationError(
                f"max_recovery_attempts must be an integer of 0 or more, "
                f"not {max_recovery_attempts!r}."
            )

        def decorate(func: F) -> F:
            existing = getattr(func, "__dbos_workflow__", None)
            if existing is not None:
                # already a workflow (e.g. @DBOS.scheduled below this decorator): wrapping it
                # again would run a workflow inside a workflow
                if name is not None and name != existing.name:
                    raise DBOSConfigurationError(
                        f"{existing.origin} is already the workflow {existing.name!r}; it "
                        f"cannot also be registered as {name!r}."
                    )
                return func
            is_async = inspect.iscoroutinefunction(func)
            definition = WorkflowDefinition(
                name=name or default_name(func),
                func=func,
                is_async=is_async,
                max_recovery_attempts=max_recovery_attempts,
            )
            registry.add_workflow(definition)
            if is_async:

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await workflows.call_workflow_async(definition, args, kwargs)

                wrapper: Any = async_wrapper
            else:

                @functools.wraps(func)
                def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return workflows.call_workflow(definition, args, kwargs)

                wrapper = sync_wrapper
            wrapper.__dbos_workflow__ = definition
            return wrapper

        return decorate

    @staticmethod
    def step(
        _func: Any = None,
        *,
        name: str | None = None,
        retries_allowed: bool = False,
        interval_seconds: float = 1.0,
        max_attempts: int = 3,
        backoff_rate: float = 2.0,
    ) -> Callable[[F], F]:
        """Make a function a step: inside a workflow its result is checkpointed and never
        recomputed after a crash; outside one it is an ordinary call."""
        _no_bare_use(_func, "step")
        _check_name(name, "Step")
        options = {
            "retries_allowed": retries_allowed,
            "interval_seconds": interval_seconds,
            "max_attempts": max_attempts,
            "backoff_rate": backoff_rate,
        }

        def decorate(func: F) -> F:
            config = _step_config(name or default_name(func), options)
            registry.add_step(config.name, func)
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await steps.run_step_async(config, func, args, kwargs)

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return steps.run_step(config, func, args, kwargs)

            return sync_wrapper  # type: ignore[return-value]

        return decorate

    @staticmethod
    def transaction(
        _func: Any = None,
        *,
        using: str | None = None,
        isolation_level: str | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """A step whose body runs in ``transaction.atomic(using)`` and whose checkpoint commits
        in the same transaction: its ORM writes happen exactly once."""
        _no_bare_use(_func, "transaction")
        _check_name(name, "Transaction")
        system_alias = dbos_settings().DATABASE
        alias = using or system_alias
        if alias != system_alias:
            raise DBOSConfigurationError(
                f"@DBOS.transaction(using={alias!r}): transactions must write to the database "
                f"that holds the workflow tables ({system_alias!r}, settings.DBOS['DATABASE']); "
                "only then can the checkpoint commit with the writes. Use a @DBOS.step for "
                "other databases."
            )
        level = isolation_level.upper() if isinstance(isolation_level, str) else isolation_level
        if level is not None and level not in _ISOLATION_LEVELS:
            raise DBOSConfigurationError(
                f"isolation_level must be one of {sorted(_ISOLATION_LEVELS)}, not "
                f"{isolation_level!r}."
            )

        def decorate(func: F) -> F:
            if inspect.iscoroutinefunction(func):
                raise DBOSConfigurationError(
                    f"@DBOS.transaction cannot decorate async function {func.__qualname__}: "
                    "Django's transactions are synchronous. Make it a plain def (an async "
                    "workflow may call it)."
                )
            config = steps.TransactionConfig(
                name=name or default_name(func), using=alias, isolation_level=level
            )
            registry.add_step(config.name, func)

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return steps.run_transaction(config, func, args, kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate

    # -- running ---------------------------------------------------------------------------

    @staticmethod
    def start_workflow(func: Callable[..., Any], *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Start a workflow on this process's thread pool and return its handle at once."""
        return workflows.start_workflow(_definition(func), args, kwargs)

    @staticmethod
    async def start_workflow_async(
        func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> WorkflowHandleAsync:
        return await workflows.start_workflow_async(_definition(func), args, kwargs)

    @staticmethod
    def run_step(
        dbos_step_options: StepOptions | None, func: Callable[..., R], *args: Any, **kwargs: Any
    ) -> R:
        """Run ``func`` as a step without decorating it (name defaults to its qualified name)."""
        options: dict[str, Any] = dict(dbos_step_options or {})
        config = _step_config(options.pop("name", None) or default_name(func), options)
        return steps.run_step(config, func, args, kwargs)

    @staticmethod
    async def run_step_async(
        dbos_step_options: StepOptions | None, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        options: dict[str, Any] = dict(dbos_step_options or {})
        config = _step_config(options.pop("name", None) or default_name(func), options)
        return await steps.run_step_async(config, func, args, kwargs)

    @staticmethod
    def sleep(seconds: float) -> None:
        """Durable sleep: the wake-up time is recorded, so a restart sleeps only the rest."""
        _check_seconds(seconds)
        steps.durable_sleep(seconds)

    @staticmethod
    async def sleep_async(seconds: float) -> None:
        _check_seconds(seconds)
        await steps.durable_sleep_async(seconds)


def _check_seconds(seconds: Any) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise DBOSException(f"DBOS.sleep needs 0 or more seconds, not {seconds!r}.")
