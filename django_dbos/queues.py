"""``Queue``: a named, durable queue of workflows with flow control (DBOS's constructor).

Declare queues at import time in an app's ``workflows`` module; the declaration registers the
queue by name in this process. Its configuration is upserted into ``dbos_queues`` lazily (first
enqueue, or a worker starting to serve it), never at import. Workers (``manage.py dbos_worker``)
claim and run what is enqueued; see docs/queues.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from django_dbos.errors import DBOSConfigurationError

DEFAULT_POLLING_INTERVAL_SEC = 1.0
INTERNAL_QUEUE_NAME = "_dbos_internal_queue"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """A queue's flow control, as declared (compared to detect conflicting declarations)."""

    concurrency: int | None = None
    worker_concurrency: int | None = None
    limit: int | None = None
    period: float | None = None
    priority_enabled: bool = False
    partition_queue: bool = False
    partition_concurrency: int | None = None
    partition_limit: int | None = None
    partition_period: float | None = None
    polling_interval_sec: float = DEFAULT_POLLING_INTERVAL_SEC

    @property
    def partition_limits(self) -> bool:
        """Whether each partition key has limits of its own (counted per key when claiming)."""
        return self.partition_concurrency is not None or self.partition_limit is not None

    def describe(self) -> str:
        shown = (f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"Queue({', '.join(shown)})"


def _positive_int(name: str, argument: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DBOSConfigurationError(
            f"Queue {name!r}: {argument} must be a positive int or None, not {value!r}."
        )
    return value


def _positive_number(name: str, argument: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DBOSConfigurationError(
            f"Queue {name!r}: {argument} must be a positive number, not {value!r}."
        )
    if value <= 0:
        raise DBOSConfigurationError(f"Queue {name!r}: {argument} must be positive, not {value!r}.")
    return float(value)


def _limiter(name: str, argument: str, limiter: Any) -> tuple[int | None, float | None]:
    if limiter is None:
        return None, None
    if not isinstance(limiter, Mapping) or set(limiter) != {"limit", "period"}:
        raise DBOSConfigurationError(
            f"Queue {name!r}: {argument} must be a dict with exactly the keys 'limit' and "
            f"'period' (e.g. {{'limit': 5, 'period': 1.0}}), not {limiter!r}."
        )
    return (
        _positive_int(name, f"{argument}['limit']", limiter["limit"]),
        _positive_number(name, f"{argument}['period']", limiter["period"]),
    )


def _validated(name: Any, options: dict[str, Any]) -> QueueSettings:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise DBOSConfigurationError(
            f"A queue's name must be a non-empty string of at most 255 characters, not {name!r}."
        )
    concurrency = _positive_int(name, "concurrency", options["concurrency"])
    worker_concurrency = _positive_int(name, "worker_concurrency", options["worker_concurrency"])
    partition_concurrency = _positive_int(
        name, "partition_concurrency", options["partition_concurrency"]
    )
    if worker_concurrency and concurrency and worker_concurrency > concurrency:
        raise DBOSConfigurationError(
            f"Queue {name!r}: concurrency ({concurrency}) must be greater than or equal to "
            f"worker_concurrency ({worker_concurrency})."
        )
    for argument in ("partition_concurrency", "partition_limiter"):
        if options[argument] is not None and not options["partition_queue"]:
            raise DBOSConfigurationError(f"Queue {name!r}: {argument} needs partition_queue=True.")
    limit, period = _limiter(name, "limiter", options["limiter"])
    partition_limit, partition_period = _limiter(
        name, "partition_limiter", options["partition_limiter"]
    )
    for flag in ("priority_enabled", "partition_queue"):
        if not isinstance(options[flag], bool):
            raise DBOSConfigurationError(
                f"Queue {name!r}: {flag} must be True or False, not {options[flag]!r}."
            )
    return QueueSettings(
        concurrency=concurrency,
        worker_concurrency=worker_concurrency,
        limit=limit,
        period=period,
        priority_enabled=options["priority_enabled"],
        partition_queue=options["partition_queue"],
        partition_concurrency=partition_concurrency,
        partition_limit=partition_limit,
        partition_period=partition_period,
        polling_interval_sec=_positive_number(
            name, "polling_interval_sec", options["polling_interval_sec"]
        ),
    )


class Queue:
    """A durable queue. ``concurrency`` caps the queue's running workflows across all workers,
    ``worker_concurrency`` those of one worker process, ``limiter`` ({"limit": n, "period": s})
    the starts in any rolling ``period`` seconds. ``priority_enabled`` allows
    ``SetEnqueueOptions(priority=...)``; ``partition_queue`` requires a
    ``queue_partition_key`` on each enqueue and applies ``partition_concurrency`` and
    ``partition_limiter`` to each key on its own (per-tenant fairness), while ``concurrency``
    and ``limiter`` still cap the whole queue.
    ``polling_interval_sec``: how often an idle worker looks without a wake-up.

    Raises ``DBOSConfigurationError`` naming the bad argument. Declaring the same name again
    with other settings is reported by the ``django_dbos.E004`` check.
    """

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        limiter: Mapping[str, Any] | None = None,
        *,
        worker_concurrency: int | None = None,
        priority_enabled: bool = False,
        partition_queue: bool = False,
        partition_concurrency: int | None = None,
        partition_limiter: Mapping[str, Any] | None = None,
        polling_interval_sec: float = DEFAULT_POLLING_INTERVAL_SEC,
    ) -> None:
        self.settings = _validated(
            name,
            {
                "concurrency": concurrency,
                "worker_concurrency": worker_concurrency,
                "limiter": limiter,
                "priority_enabled": priority_enabled,
                "partition_queue": partition_queue,
                "partition_concurrency": partition_concurrency,
                "partition_limiter": partition_limiter,
                "polling_interval_sec": polling_interval_sec,
            },
        )
        self.name = name
        self.stored = False  # configuration upserted by this process (engine/queues.py)
        from django_dbos.registry import registry

        registry.add_queue(self)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"

    @property
    def concurrency(self) -> int | None:
        return self.settings.concurrency

    @property
    def worker_concurrency(self) -> int | None:
        return self.settings.worker_concurrency

    @property
    def limiter(self) -> dict[str, Any] | None:
        if self.settings.limit is None:
            return None
        return {"limit": self.settings.limit, "period": self.settings.period}

    @property
    def priority_enabled(self) -> bool:
        return self.settings.priority_enabled

    @property
    def partition_queue(self) -> bool:
        return self.settings.partition_queue

    @property
    def partition_concurrency(self) -> int | None:
        return self.settings.partition_concurrency

    @property
    def partition_limiter(self) -> dict[str, Any] | None:
        if self.settings.partition_limit is None:
            return None
        return {"limit": self.settings.partition_limit, "period": self.settings.partition_period}

    @property
    def polling_interval_sec(self) -> float:
        return self.settings.polling_interval_sec

    def enqueue(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Put a workflow on this queue; a ``WorkflowHandle``. The status row is written in the
        caller's transaction on the system database, if any (it commits or rolls back with
        it). Raises ``DBOSQueueDeduplicatedError``, ``DBOSInvalidArgumentError``."""
        from django_dbos.dbos import _definition
        from django_dbos.engine.queues import enqueue

        return enqueue(self, _definition(func), args, kwargs)

    async def enqueue_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``enqueue`` from async code: a ``WorkflowHandleAsync``."""
        from django_dbos.dbos import _definition
        from django_dbos.engine.queues import enqueue_async

        return await enqueue_async(self, _definition(func), args, kwargs)


def internal_queue() -> Queue:
    """The queue django_dbos itself enqueues on (schedule firings without a ``queue_name``,
    debounced workflows without a queue). Every worker serves it, whatever ``--queue`` says."""
    from django_dbos.registry import registry

    existing = registry.queues.get(INTERNAL_QUEUE_NAME)
    return existing if existing is not None else Queue(INTERNAL_QUEUE_NAME)
