"""``manage.py dbos_gc``: delete old finished workflows with all their rows (retention)."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_dbos.engine import retention
from django_dbos.management.arguments import duration, whole_number
from django_dbos.models import now_ms


class Command(BaseCommand):
    help = (
        "Delete finished workflows (SUCCESS, ERROR, CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED) "
        "older than --older-than and/or beyond the newest --keep, with their steps, messages, "
        "events and streams, in batches. Pending, enqueued and delayed workflows are never "
        "deleted."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration,
            default=None,
            metavar="DURATION",
            help="Delete finished workflows created longer ago than this (e.g. 30d, 12h).",
        )
        parser.add_argument(
            "--keep",
            type=whole_number(1),
            default=None,
            metavar="N",
            help="Keep only the newest N workflows (older finished ones are deleted).",
        )
        parser.add_argument(
            "--batch-size",
            type=whole_number(1, retention.MAX_GC_BATCH_SIZE),
            default=retention.DEFAULT_GC_BATCH_SIZE,
            metavar="N",
            help=f"Workflows deleted per transaction (default {retention.DEFAULT_GC_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted; delete nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than: datetime.timedelta | None = options["older_than"]
        keep: int | None = options["keep"]
        if older_than is None and keep is None:
            raise CommandError("Say what to delete: --older-than DURATION and/or --keep N.")
        cutoff = None
        if older_than is not None:
            cutoff = max(0, now_ms() - int(older_than.total_seconds() * 1000))
        dry_run = options["dry_run"]
        number = retention.garbage_collect(
            cutoff, keep, batch_size=options["batch_size"], dry_run=dry_run
        )
        if dry_run:
            self.stdout.write(f"Would delete {number} finished workflow(s).")
        else:
            self.stdout.write(self.style.SUCCESS(f"Deleted {number} finished workflow(s)."))
