"""Retention: delete old finished workflows with all their rows, in batches.

Each batch is one transaction, so a workflow is deleted whole or not at all; PENDING, ENQUEUED
and DELAYED workflows are never touched.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import models

from django_dbos.engine.control import FINAL_STATUSES, _atomic, _conn, check_count, delete_rows
from django_dbos.models import (
    WorkflowStatus,
)

logger = logging.getLogger(__name__)
DEFAULT_GC_BATCH_SIZE = 1000
MAX_GC_BATCH_SIZE = 10_000


def gc_cutoff(cutoff_epoch_timestamp_ms: int | None, rows_threshold: int | None) -> int | None:
    """DBOS's rule: the later of the given cutoff and the creation time of the
    ``rows_threshold``-th newest workflow (so only the newest ``rows_threshold`` are kept)."""
    cutoff = cutoff_epoch_timestamp_ms
    if rows_threshold is not None:
        nth = list(
            WorkflowStatus.objects.using(_conn().alias)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[rows_threshold - 1 : rows_threshold]
        )
        if nth and (cutoff is None or nth[0] > cutoff):
            cutoff = nth[0]
    return cutoff


def _garbage(cutoff_ms: int) -> models.QuerySet[WorkflowStatus]:
    return WorkflowStatus.objects.using(_conn().alias).filter(
        created_at__lt=cutoff_ms, status__in=FINAL_STATUSES
    )


def garbage_collect(
    cutoff_epoch_timestamp_ms: Any = None,
    rows_threshold: Any = None,
    *,
    batch_size: Any = DEFAULT_GC_BATCH_SIZE,
    dry_run: bool = False,
) -> int:
    """Delete finished workflows (never PENDING, ENQUEUED or DELAYED) created before the
    cutoff, with all their rows, ``batch_size`` workflows per transaction; the number deleted
    (with ``dry_run``: the number that would be)."""
    if cutoff_epoch_timestamp_ms is not None:
        check_count(cutoff_epoch_timestamp_ms, "cutoff_epoch_timestamp_ms", 0)
    if rows_threshold is not None:
        check_count(rows_threshold, "rows_threshold", 1)
    size = check_count(batch_size, "batch_size", 1, MAX_GC_BATCH_SIZE)
    cutoff = gc_cutoff(cutoff_epoch_timestamp_ms, rows_threshold)
    if cutoff is None:
        return 0
    if dry_run:
        return _garbage(cutoff).count()
    deleted = 0
    while True:
        with _atomic():
            # locked (PostgreSQL) so a concurrent resume cannot revive one mid-delete
            batch = list(
                _garbage(cutoff)
                .order_by("created_at")
                .select_for_update(skip_locked=True)
                .values_list("workflow_uuid", flat=True)[:size]
            )
            with _conn().cursor() as cursor:
                delete_rows(cursor, batch)
        deleted += len(batch)
        if len(batch) < size:
            break
    if deleted:
        logger.info("Garbage-collected %d workflow(s) created before %d", deleted, cutoff)
    return deleted
