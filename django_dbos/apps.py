"""App configuration: connects things, does no work (no threads, no queries)."""

from __future__ import annotations

import importlib
import traceback

from django.apps import AppConfig, apps
from django.utils.module_loading import module_has_submodule


class DjangoDBOSConfig(AppConfig):
    name = "django_dbos"
    label = "django_dbos"
    verbose_name = "Durable workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_dbos import checks  # noqa: F401  (registers the system checks)

        discover_workflow_modules()


def discover_workflow_modules() -> None:
    """Import every installed app's ``workflows`` module so its decorators register.

    A module that fails to import is recorded, not raised from ``ready()``: the
    ``django_dbos.E003`` check reports it with its traceback, so every management command stops
    with a readable error naming the module instead of a bare import traceback.
    """
    from django_dbos.conf import dbos_settings
    from django_dbos.registry import registry

    module_name = dbos_settings().WORKFLOWS_MODULE
    for app_config in apps.get_app_configs():
        if not module_has_submodule(app_config.module, module_name):
            continue
        dotted = f"{app_config.name}.{module_name}"
        try:
            importlib.import_module(dotted)
        except Exception as exc:
            exc.__dbos_traceback__ = traceback.format_exc()  # type: ignore[attr-defined]
            registry.import_errors[dotted] = exc
