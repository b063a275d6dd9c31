"""``manage.py dbos_worker``: run workflows here, recover this executor's and adopt dead ones'."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_dbos.conf import dbos_settings
from django_dbos.engine.dispatcher import served_queues
from django_dbos.engine.executor import reset_executor
from django_dbos.engine.worker import run_worker
from django_dbos.errors import DBOSConfigurationError
from django_dbos.management.arguments import non_negative_float, positive_int

logger = logging.getLogger("django_dbos.worker")


class Command(BaseCommand):
    help = (
        "Run durable workflows: resume this executor's pending workflows, adopt those of dead "
        "executors, run queued workflows (--queue), heartbeat. SIGTERM/SIGINT stop it "
        "gracefully; a second signal forces exit."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=None,
            help="Workflows run at once (default: settings.DBOS['WORKER_THREADS']).",
        )
        parser.add_argument(
            "--executor-id",
            default=None,
            help="Run under this executor ID and take over its PENDING workflows at once "
            "(one live process per ID). Default: a unique ID per process.",
        )
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="NAME",
            default=None,
            help="Serve this queue (repeatable). Default: every queue declared in this project.",
        )
        parser.add_argument(
            "--no-schedules",
            action="store_false",
            dest="schedules",
            help="Do not run the scheduler here (cron schedules fire from the other workers).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Recover and adopt what is there, wait for it to finish, then exit.",
        )
        parser.add_argument(
            "--grace-period",
            type=non_negative_float,
            default=None,
            help="Seconds to let running workflows reach a checkpoint when stopping "
            "(default: settings.DBOS['SHUTDOWN_GRACE_PERIOD']).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        executor_id = options["executor_id"]
        if executor_id is not None and not executor_id.strip():
            raise CommandError("--executor-id must not be empty.")
        try:
            queues = served_queues(options["queues"])
        except DBOSConfigurationError as exc:
            raise CommandError(str(exc)) from None
        executor = reset_executor(executor_id or dbos_settings().EXECUTOR_ID)
        if options["threads"]:
            executor.threads = options["threads"]
        stop = threading.Event()
        previous = self._install_signal_handlers(stop)
        self.stdout.write(
            f"dbos_worker {executor.executor_id} (pid {os.getpid()}, {executor.threads} threads)"
            + (" in burst mode" if options["burst"] else "")
            + (f", queues: {', '.join(q.name for q in queues)}" if queues else "")
            + ("" if options["schedules"] or options["burst"] else ", no schedules")
        )
        try:
            stragglers = run_worker(
                executor,
                stop,
                burst=options["burst"],
                grace_period=options["grace_period"],
                queues=[q.name for q in queues],
                schedules=options["schedules"],
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if stragglers:
            self.stdout.write(
                self.style.WARNING(f"Stopped with {len(stragglers)} workflow(s) left PENDING.")
            )
            self.stdout.flush()
            os._exit(0)  # their threads are still inside user code; recovery resumes them
        self.stdout.write(self.style.SUCCESS("dbos_worker stopped cleanly."))

    def _install_signal_handlers(self, stop: threading.Event) -> dict[int, Any]:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():
                logger.warning("Second signal: exiting now")
                os._exit(1)
            logger.info(
                "Signal %s: stopping; running workflows halt at their next checkpoint",
                signal.Signals(signum).name,
            )
            stop.set()

        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, on_signal)
        return previous
