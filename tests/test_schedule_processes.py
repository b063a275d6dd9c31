"""Schedules across real ``dbos_worker`` processes (issue 6): two workers both run the
scheduler for several seconds, one of them restarts midway, and a backfill overlaps the live
firings; every expected firing ran exactly once.

The workers import tests/schedule_workflows.py (their boot script does, then runs
``dbos_worker``). Each firing's body writes a ``tests.models.Run`` row keyed by its scheduled
time, so a firing that ran twice shows up as two rows for one time.
"""

from __future__ import annotations

import datetime
import itertools
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from django_dbos import DBOS
from django_dbos.engine import scheduler
from django_dbos.models import Executor, WorkflowStatus
from tests import schedule_workflows as sw
from tests.conftest import REPO, worker_env
from tests.models import Run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

UTC = datetime.UTC
VERSION = "schedule-process-test"
BOOT = (
    "import sys, django; django.setup(); import tests.schedule_workflows; "
    "from django.core.management import call_command; "
    "call_command('dbos_worker', *sys.argv[1:])"
)


@pytest.fixture(autouse=True)
def _same_version_as_the_workers(settings):
    settings.DBOS = {**settings.DBOS, "APPLICATION_VERSION": VERSION}


class Worker:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.executor_id = f"sched-proc-{uuid.uuid4().hex[:8]}"
        self._file = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, "--executor-id", self.executor_id],
            env=worker_env(
                DJANGO_SETTINGS_MODULE="testproject.settings",
                DBOS_APPLICATION_VERSION=VERSION,
                DBOS_LOG_LEVEL="INFO",
            ),
            cwd=REPO,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"worker did not stop:\n{self.output()}") from None
        finally:
            self._file.close()
        assert self.process.returncode == 0, self.output()
        assert "stopped cleanly" in self.output(), self.output()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: list[Worker]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            outputs = "\n".join(f"--- {w.log.name}\n{w.output()}" for w in logs)
            raise AssertionError(f"timed out waiting for {what}\n{outputs}")
        time.sleep(0.05)


def fired(key: str) -> Counter[datetime.datetime]:
    return Counter(
        datetime.datetime.fromisoformat(stamp)
        for stamp in Run.objects.filter(key=key).values_list("step", flat=True)
    )


def settled(prefix: str) -> Callable[[], bool]:
    unfinished = ["ENQUEUED", "PENDING", "DELAYED"]
    return lambda: (
        not WorkflowStatus.objects.filter(
            workflow_uuid__startswith=prefix, status__in=unfinished
        ).exists()
    )


def registered(workers: list[Worker]) -> Callable[[], bool]:
    ids = [w.executor_id for w in workers]
    return lambda: Executor.objects.filter(executor_id__in=ids).count() == len(ids)


def test_two_schedulers_restart_and_backfill_fire_each_time_once(tmp_path):
    DBOS.create_schedule("proc", sw.record_firing, "* * * * * *", context={"key": "proc"})
    steady = Worker(tmp_path / "steady.log")
    restarted = Worker(tmp_path / "restarted-1.log")
    everyone = [steady, restarted]
    try:
        wait_for(registered(everyone), 30, "the workers to register", everyone)
        started = datetime.datetime.now(UTC)
        wait_for(lambda: len(fired("proc")) >= 3, 20, "three firings", everyone)
        # one scheduler restarts while the other keeps firing
        restarted.stop()
        again = Worker(tmp_path / "restarted-2.log")
        everyone.append(again)
        wait_for(registered([again]), 30, "the restarted worker to register", everyone)
        # a backfill over the seconds both have been firing: nothing runs twice
        handles = DBOS.backfill_schedule("proc", started, datetime.datetime.now(UTC))
        wait_for(lambda: len(fired("proc")) >= 7, 20, "more firings", everyone)
        DBOS.pause_schedule("proc")
        for handle in handles:
            handle.get_result(timeout=30)
        wait_for(settled("sched-proc-"), 30, "the firings to finish", everyone)
    finally:
        for worker in everyone:
            worker.stop()
    for worker in everyone:
        assert "Scheduler started" in worker.output(), worker.output()
    counts = fired("proc")
    assert set(counts.values()) == {1}, {t: n for t, n in counts.items() if n != 1}
    times = sorted(counts)
    # the steady worker ran all along: no second is missing
    assert all(b - a == datetime.timedelta(seconds=1) for a, b in itertools.pairwise(times))
    ids = set(
        WorkflowStatus.objects.filter(workflow_uuid__startswith="sched-proc-").values_list(
            "workflow_uuid", flat=True
        )
    )
    assert ids == {scheduler.firing_id("proc", t) for t in times}
    assert set(
        WorkflowStatus.objects.filter(workflow_uuid__in=ids).values_list("status", flat=True)
    ) == {"SUCCESS"}
    assert {h.workflow_id for h in handles} <= ids
