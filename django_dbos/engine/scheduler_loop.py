"""The scheduler loop: one thread per worker (``SchedulerThread``) that enqueues the due
firings of the ACTIVE schedules (see ``engine/scheduler.py`` for what a firing is and why it
happens once whatever the number of schedulers).

Each round reads the ACTIVE schedules, about every second or sooner when a firing is due. A
schedule seen for the first time (worker start, created, resumed) starts from then; with
``automatic_backfill`` from its ``last_fired_at`` instead, so firings missed while no worker ran
(or while it was paused) run once.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time

from django.db import DatabaseError, connections

from django_dbos.engine.executor import refresh_connections
from django_dbos.engine.scheduler import (
    UTC,
    advance_last_fired,
    cron_times,
    fire,
    firing_id,
    from_ms,
    logger,
    schedule_rows,
    store_declared,
    to_ms,
    zone,
)
from django_dbos.models import Schedule, ScheduleStatus, now_ms

FIRINGS_PER_TICK = 500
"""At most this many firings of one schedule per loop round (a long automatic backfill is
spread over rounds instead of holding the loop)."""
POLL_SECONDS = 1.0


@dataclasses.dataclass(slots=True)
class _Cursor:
    pk: int
    updated_at: int
    after_ms: int  # firings strictly after this instant are due


class Scheduler:
    """One process's scheduler state: a cursor per ACTIVE schedule."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()  # set: finish the firing in hand, fire no more
        self.started_ms = now_ms()
        self.cursors: dict[str, _Cursor] = {}
        self.declared_stored = False
        self._warned: set[tuple[str, str]] = set()

    def tick(self) -> float:
        """Enqueue what is due; the seconds until the next firing (at most ``POLL_SECONDS``)."""
        if not self.declared_stored:
            store_declared()
            self.declared_stored = True
        now = datetime.datetime.now(UTC)
        wait = POLL_SECONDS
        active = list(schedule_rows().filter(status=ScheduleStatus.ACTIVE))
        names = {row.schedule_name for row in active}
        for name in set(self.cursors) - names:  # deleted or paused: forget it
            del self.cursors[name]
        for row in active:
            if self.stop.is_set():
                break
            try:
                wait = min(wait, self._run_schedule(row, now))
            except Exception as exc:
                if _is_database_error(exc):
                    raise  # the whole round is retried
                self._warn(row, f"{type(exc).__name__}: {exc}")  # e.g. a cron edited in SQL
        return max(0.0, wait)

    def _cursor(self, row: Schedule) -> _Cursor:
        cursor = self.cursors.get(row.schedule_name)
        if cursor is None or cursor.pk != row.pk:
            # new to us (worker start, created, resumed): from then; with automatic
            # backfill from its last firing instead
            if row.automatic_backfill and row.last_fired_at is not None:
                start = row.last_fired_at
            else:
                start = max(row.updated_at, self.started_ms)
            cursor = _Cursor(pk=row.pk, updated_at=row.updated_at, after_ms=start)
        elif cursor.updated_at != row.updated_at:  # redefined (or paused and resumed)
            cursor.after_ms = max(cursor.after_ms, row.updated_at)
            cursor.updated_at = row.updated_at
        self.cursors[row.schedule_name] = cursor
        return cursor

    def _run_schedule(self, row: Schedule, now: datetime.datetime) -> float:
        cursor = self._cursor(row)
        due: list[datetime.datetime] = []
        upcoming: datetime.datetime | None = None
        for when in cron_times(row.schedule, zone(row.cron_timezone), from_ms(cursor.after_ms)):
            if when > now or len(due) >= FIRINGS_PER_TICK:
                upcoming = when
                break
            due.append(when)
        for when in due:
            if self.stop.is_set():
                break
            try:
                fire(row, when, firing_id(row.schedule_name, when))
            except Exception as exc:
                if _is_database_error(exc):
                    raise  # retried next round from the same cursor
                self._warn(row, f"{type(exc).__name__}: {exc}")  # skipped, not retried
            cursor.after_ms = to_ms(when)
        if due and cursor.after_ms >= to_ms(due[0]):
            advance_last_fired(row, cursor.after_ms)
        if upcoming is None:
            return POLL_SECONDS
        return (upcoming - datetime.datetime.now(UTC)).total_seconds()

    def _warn(self, row: Schedule, problem: str) -> None:
        key = (row.schedule_name, problem)
        if key not in self._warned:  # once per problem, not every second
            self._warned.add(key)
            logger.warning(
                "Schedule %r cannot fire here: %s",
                row.schedule_name,
                problem,
                extra={"schedule_name": row.schedule_name},
            )


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseError)


class SchedulerThread:
    """The scheduler loop on its own thread; ``stop()`` ends it within a moment."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.scheduler = Scheduler(self._stop)
        self._thread = threading.Thread(target=self._run, name="dbos-scheduler", daemon=True)

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        logger.info("Scheduler started")
        try:
            while not self._stop.is_set():
                refresh_connections()
                try:
                    wait = self.scheduler.tick()
                except Exception:
                    logger.exception("The scheduler round failed; retrying")
                    connections.close_all()
                    wait = POLL_SECONDS
                if wait > 0:
                    self._stop.wait(wait)
                else:
                    time.sleep(0)  # yield: more is due (a long automatic backfill)
        finally:
            connections.close_all()
