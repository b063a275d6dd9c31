"""What every django_dbos admin shares: read-only access to rows in ``DBOS["DATABASE"]``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from django_dbos.conf import dbos_settings


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewing only: no add, change or delete for anyone (superusers included). Viewing needs
    the model's ``view`` permission (or ``change``, which Django takes to include it). Rows are
    read from ``DBOS["DATABASE"]``."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).using(dbos_settings().DATABASE)

    def shown(self, value: Any) -> Any:
        """``value``, or the empty-value mark for None (the detail page would print "None")."""
        return self.get_empty_value_display() if value is None else value

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
