"""Queue flow control across real ``dbos_worker`` processes (issue 5, "Correctness tests").

Workflows are enqueued from this process and run by worker subprocesses that import
tests/process_queue_workflows.py (their boot script imports it, then runs ``dbos_worker``).
Each workflow's body writes ``tests.models.Run`` rows: how often a body ran, and the
wall-clock interval its step ran in. That interval lies inside the time the workflow was
PENDING (the body starts after the claim commits and ends before the finish is written), so
intervals that overlap are workflows the queue really let run at the same time.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_dbos import SetEnqueueOptions
from django_dbos.models import Executor, OperationOutput, WorkflowStatus
from tests import process_queue_workflows as pw
from tests.conftest import REPO, worker_env
from tests.models import Run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

VERSION = "queue-process-test"
BOOT = (
    "import sys, django; django.setup(); import tests.process_queue_workflows; "
    "from django.core.management import call_command; "
    "call_command('dbos_worker', *sys.argv[1:])"
)
FAST_RECOVERY = {"DBOS_HEARTBEAT_INTERVAL": "0.2", "DBOS_EXECUTOR_TIMEOUT": "1.5"}


@pytest.fixture(autouse=True)
def _same_version_as_the_workers(settings):
    settings.DBOS = {**settings.DBOS, "APPLICATION_VERSION": VERSION}


class Worker:
    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.killed = False
        self.executor_id = ""
        self._file = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, *args],
            env=worker_env(
                DJANGO_SETTINGS_MODULE="testproject.settings",
                DBOS_APPLICATION_VERSION=VERSION,
                DBOS_LOG_LEVEL="WARNING",
                **env,
            ),
            cwd=REPO,
            # a file, not a pipe: nobody reads while the test runs, and a full pipe blocks
            stdout=self._file,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> str:
        return self.log.read_text()

    def kill_9(self) -> None:
        self.killed = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Wait for the worker after ``terminate``: unless killed, it must stop cleanly."""
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"worker did not stop:\n{self.output()}") from None
        finally:
            self._file.close()
        if not self.killed:
            assert self.process.returncode == 0, self.output()
            assert "stopped cleanly" in self.output(), self.output()


@contextlib.contextmanager
def workers(tmp_path: Path, count: int, *args: str, **env: str) -> Iterator[list[Worker]]:
    """``count`` workers (``dbos_worker *args``), yielded once all have registered; each runs
    under the executor ID ``worker.executor_id``. SIGTERM and a clean stop at the end."""
    suffix = uuid.uuid4().hex[:8]
    started: list[Worker] = []
    try:
        for i in range(count):
            executor_id = f"qproc-{i}-{suffix}"
            worker = Worker(
                [*args, "--executor-id", executor_id], tmp_path / f"worker-{i}.log", env
            )
            worker.executor_id = executor_id
            started.append(worker)
        ids = [worker.executor_id for worker in started]
        wait_for(
            lambda: Executor.objects.filter(executor_id__in=ids).count() == count,
            30,
            "the workers to register",
            started,
        )
        yield started
    except BaseException:
        for worker in started:
            worker.terminate()
        for worker in started:
            with contextlib.suppress(AssertionError):  # keep the test's own failure
                worker.stop()
        raise
    for worker in started:
        worker.terminate()
    for worker in started:
        worker.stop()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: list[Worker]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    outputs = "\n".join(f"--- {w.log.name}\n{w.output()}" for w in logs)
    raise AssertionError(f"timed out waiting for {what}\n{outputs}")


def all_succeeded(ids: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        return WorkflowStatus.objects.filter(pk__in=ids, status="SUCCESS").count() == len(ids)

    return check


def statuses(ids: list[str]) -> Counter[str]:
    return Counter(WorkflowStatus.objects.filter(pk__in=ids).values_list("status", flat=True))


def intervals(ids: list[str]) -> dict[str, tuple[int, int]]:
    """Each workflow's step interval (µs); asserts each body ran exactly once."""
    runs = defaultdict(list)
    for key, step in Run.objects.filter(key__in=ids).values_list("key", "step"):
        runs[key].append(step)
    counts = Counter({workflow_id: len(runs[workflow_id]) for workflow_id in ids})
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n != 1}
    found = {}
    for workflow_id, (step,) in runs.items():
        label, start, end = step.split()
        assert label == pw.INTERVAL
        found[workflow_id] = (int(start), int(end))
    return found


def peak_overlap(spans: list[tuple[int, int]]) -> int:
    """The most intervals open at one instant (an end and a start at the same µs: not both)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = running = 0
    for _, delta in events:  # -1 sorts before +1 at equal times
        running += delta
        peak = max(peak, running)
    return peak


def by(ids: list[str], column: str) -> dict[str, Any]:
    return dict(WorkflowStatus.objects.filter(pk__in=ids).values_list("workflow_uuid", column))


@pytest.mark.parametrize(
    "queue",
    [pw.global_two, pw.global_two_one_each],
    ids=["any-per-worker", "one-per-worker"],
)
def test_global_concurrency_across_three_workers(queue, tmp_path):
    """Concurrency 2 over 3 workers. With ``worker_concurrency=1`` no worker can reach the
    limit alone, so the two slots are always held by two processes counting each other."""
    with workers(tmp_path, 3, "--queue", queue.name) as started:
        ids = [queue.enqueue(pw.timed, 0.15).workflow_id for _ in range(16)]
        wait_for(all_succeeded(ids), 45, "16 workflows to succeed", started)
    spans = intervals(ids)
    assert peak_overlap(list(spans.values())) == 2  # never more; and the limit was reached
    if queue.worker_concurrency == 1:
        assert len(set(by(ids, "executor_id").values())) >= 2


def test_worker_concurrency_one_across_three_workers(tmp_path):
    with workers(tmp_path, 3, "--queue", pw.one_per_worker.name) as started:
        ids = [pw.one_per_worker.enqueue(pw.timed, 0.15).workflow_id for _ in range(18)]
        wait_for(all_succeeded(ids), 45, "18 workflows to succeed", started)
    spans = intervals(ids)
    per_executor: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for workflow_id, executor_id in by(ids, "executor_id").items():
        per_executor[executor_id].append(spans[workflow_id])
    assert len(per_executor) >= 2, per_executor.keys()
    for executor_id, executor_spans in per_executor.items():
        assert peak_overlap(executor_spans) == 1, executor_id
    assert peak_overlap(list(spans.values())) >= 2  # yet the workers ran side by side


def test_limiter_five_per_second_across_three_workers(tmp_path):
    with workers(tmp_path, 3, "--queue", pw.rated.name) as started:
        ids = [pw.rated.enqueue(pw.timed, 0.0).workflow_id for _ in range(20)]
        wait_for(all_succeeded(ids), 45, "20 workflows to succeed", started)
    intervals(ids)  # each ran exactly once
    starts = sorted(by(ids, "started_at_epoch_ms").values())
    # the claim counts starts in (now - 1000 ms, now]: any 6 starts span at least 1000 ms
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + 1000]
        assert len(in_window) <= 5, (start, in_window)
    assert starts[-1] - starts[0] >= 3000  # 20 starts at 5 per second


def test_kill_9_a_worker_running_queued_workflows(tmp_path):
    with workers(tmp_path, 3, "--queue", pw.killable.name, **FAST_RECOVERY) as started:
        executor_ids = [worker.executor_id for worker in started]
        ids = [pw.killable.enqueue(pw.sleeper, 2.0).workflow_id for _ in range(24)]

        def mid_flight() -> str | None:
            """An executor with a claimed workflow past step ``a`` (in its durable sleep)."""
            done_a = OperationOutput.objects.filter(workflow_id__in=ids, function_id=1)
            return (
                WorkflowStatus.objects.filter(
                    pk__in=done_a.values("workflow_id"),
                    status="PENDING",
                    executor_id__in=executor_ids,
                )
                .values_list("executor_id", flat=True)
                .first()
            )

        victim_id = wait_for(mid_flight, 30, "a workflow in its sleep", started)
        victim = started[executor_ids.index(victim_id)]
        victim.kill_9()
        owned = set(
            WorkflowStatus.objects.filter(
                pk__in=ids, status="PENDING", executor_id=victim_id
            ).values_list("workflow_uuid", flat=True)
        )
        done_before = set(
            OperationOutput.objects.filter(workflow_id__in=ids).values_list(
                "workflow_id", "function_id"
            )
        )
        assert owned, "the killed worker ran none of the workflows"
        wait_for(all_succeeded(ids), 45, "all 24 workflows to succeed", started)

    assert statuses(ids) == {"SUCCESS": 24}
    final_owner = by(ids, "executor_id")
    assert all(final_owner[w] != victim_id for w in owned)  # adopted by a live worker
    runs = Counter(Run.objects.filter(key__in=ids).values_list("key", "step"))
    for workflow_id in ids:
        for function_id, label in ((1, "a"), (3, "b")):
            count = runs[(workflow_id, label)]
            if (workflow_id, function_id) in done_before or workflow_id not in owned:
                # finished before the kill, or never touched by the killed worker: once
                assert count == 1, (workflow_id, label, count, workflow_id in owned)
            else:
                # in flight when the worker died: at least once, at most once more
                assert 1 <= count <= 2, (workflow_id, label, count)
    # the killed worker's workflows were at most in their 2 s sleep: b ran once, after adoption
    for workflow_id in owned:
        assert runs[(workflow_id, "b")] == 1


def test_partition_concurrency_one_with_a_thousand_workflows(tmp_path):
    """1,000 workflows over 10 partitions, partition concurrency 1, 3 workers: no partition
    ever runs two at once (and each workflow runs exactly once)."""
    total, partitions = 1000, 10
    ids = []
    with workers(tmp_path, 3, "--queue", pw.partitioned.name) as started:
        for i in range(total):
            with SetEnqueueOptions(queue_partition_key=f"p{i % partitions}"):
                ids.append(pw.partitioned.enqueue(pw.timed, 0.002).workflow_id)
        wait_for(all_succeeded(ids), 50, f"{total} workflows to succeed", started)
    spans = intervals(ids)
    per_partition: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for workflow_id, key in by(ids, "queue_partition_key").items():
        per_partition[key].append(spans[workflow_id])
    assert sorted(per_partition) == [f"p{i}" for i in range(partitions)]
    assert {len(s) for s in per_partition.values()} == {total // partitions}
    for key, partition_spans in per_partition.items():
        assert peak_overlap(partition_spans) == 1, key
    assert peak_overlap(list(spans.values())) >= 2  # partitions did run side by side
