"""System checks, asserted by equality."""

from __future__ import annotations

import pytest
from django.core.checks import Error, Warning
from django.db import connection
from django.test.utils import override_settings

from django_dbos import checks
from django_dbos.registry import DuplicateName, registry


def test_a_correct_configuration_has_no_messages():
    assert checks.check_settings() == []
    assert checks.check_workflow_modules() == []


@override_settings(DBOS={"WORKER_THREADS": 0, "COLOUR": "blue", "HEARTBEAT_INTERVAL": "5"})
def test_bad_settings_are_reported_as_e001():
    assert checks.check_settings() == [
        Error(
            "settings.DBOS['WORKER_THREADS'] must be greater than 0, not 0.",
            hint="Fix settings.DBOS; see docs/settings.md.",
            id="django_dbos.E001",
        ),
        Error(
            "settings.DBOS has an unknown key 'COLOUR'; known keys: APPLICATION_VERSION, "
            "DATABASE, ENCRYPTION_KEYS, EXECUTOR_ID, EXECUTOR_TIMEOUT, HEARTBEAT_INTERVAL, "
            "MAX_RECOVERY_ATTEMPTS, POLL_INTERVAL, PREPARED_STATEMENTS, RECOVERY_INTERVAL, "
            "SERIALIZER, SHUTDOWN_GRACE_PERIOD, WORKER_THREADS, WORKFLOWS_MODULE.",
            hint="Fix settings.DBOS; see docs/settings.md.",
            id="django_dbos.E001",
        ),
        Error(
            "settings.DBOS['HEARTBEAT_INTERVAL'] must be int or float, not str.",
            hint="Fix settings.DBOS; see docs/settings.md.",
            id="django_dbos.E001",
        ),
    ]


@override_settings(DBOS={"HEARTBEAT_INTERVAL": 10, "EXECUTOR_TIMEOUT": 5})
def test_a_timeout_shorter_than_the_heartbeat_is_an_error():
    [message] = checks.check_settings()
    assert message.id == "django_dbos.E001"
    assert "EXECUTOR_TIMEOUT" in message.msg


@override_settings(DBOS={"DATABASE": "elsewhere"})
def test_an_unknown_database_alias_is_e002():
    assert checks.check_settings() == [
        Error(
            "settings.DBOS['DATABASE'] names database alias 'elsewhere', which is not in "
            "settings.DATABASES.",
            hint="Use one of: default",
            id="django_dbos.E002",
        )
    ]


@override_settings(DBOS={"SERIALIZER": "nowhere.Serializer"})
def test_an_unimportable_serializer_is_e005():
    [message] = checks.check_settings()
    assert message.id == "django_dbos.E005"
    assert "nowhere.Serializer" in message.msg


@override_settings(DBOS="not a dict")
def test_settings_that_are_not_a_dict():
    assert [m.msg for m in checks.check_settings()] == ["settings.DBOS must be a dict, not str."]


@pytest.fixture
def clean_registry_problems():
    saved = (list(registry.duplicates), dict(registry.import_errors))
    yield
    registry.duplicates[:], registry.import_errors = saved[0], saved[1]


def test_duplicate_workflow_names_are_e004(clean_registry_problems):
    from django_dbos import DBOS

    @DBOS.workflow(name="tests.checks.same")
    def first():
        return 1

    def second():
        return 2

    second.__qualname__ = "other_module_function"
    DBOS.workflow(name="tests.checks.same")(second)
    origin = "tests.test_checks.test_duplicate_workflow_names_are_e004.<locals>.first"
    assert registry.duplicates[-1] == DuplicateName(
        kind="workflow",
        name="tests.checks.same",
        first=origin,
        second="tests.test_checks.other_module_function",
    )
    assert checks.check_workflow_modules() == [
        Error(
            "Two workflows are registered under the name 'tests.checks.same': "
            f"{origin} and tests.test_checks.other_module_function.",
            hint="Give one of them another name with @DBOS.workflow(name=...).",
            obj="tests.test_checks.other_module_function",
            id="django_dbos.E004",
        )
    ]
    assert registry.workflows["tests.checks.same"].func is first.__wrapped__


def test_the_same_function_imported_twice_is_not_a_duplicate(clean_registry_problems):
    from django_dbos import DBOS

    def same():
        return 1

    DBOS.workflow(name="tests.checks.reloaded")(same)
    DBOS.workflow(name="tests.checks.reloaded")(same)
    assert checks.check_workflow_modules() == []


def test_workflow_modules_that_fail_to_import_are_e003(clean_registry_problems, tmp_path):
    import sys

    from django.apps import apps

    from django_dbos.apps import discover_workflow_modules

    package = tmp_path / "brokenapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "workflows.py").write_text("raise RuntimeError('boom at import')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        from django.apps.config import AppConfig

        config = AppConfig.create("brokenapp")  # an installed app whose workflows are broken
        config.apps = apps
        apps.app_configs["brokenapp"] = config
        try:
            discover_workflow_modules()
        finally:
            del apps.app_configs["brokenapp"]
            apps.clear_cache()
    finally:
        sys.path.remove(str(tmp_path))
    [message] = checks.check_workflow_modules()
    assert message.id == "django_dbos.E003"
    assert message.obj == "brokenapp.workflows"
    assert "boom at import" in message.msg
    assert "Traceback" in message.hint


@pytest.mark.django_db(transaction=True)
def test_sqlite_without_wal_or_immediate_transactions_warns():
    if connection.vendor != "sqlite":
        assert checks.check_sqlite_mode(databases=["default"]) == []
        return
    assert checks.check_sqlite_mode(databases=["default"]) == []
    options = connection.settings_dict["OPTIONS"]
    saved = dict(options)
    try:
        options.pop("transaction_mode")
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=DELETE")
        assert checks.check_sqlite_mode(databases=["default"]) == [
            Warning(
                "The SQLite database 'default' is in 'delete' journal mode, not WAL: workers "
                "and web requests will block each other.",
                hint='Add "init_command": "PRAGMA journal_mode=WAL;" to its OPTIONS.',
                id="django_dbos.W001",
            ),
            Warning(
                "The SQLite database 'default' does not use IMMEDIATE transactions: two "
                "concurrent transactions can fail with 'database is locked'.",
                hint='Add "transaction_mode": "IMMEDIATE" to its OPTIONS.',
                id="django_dbos.W002",
            ),
        ]
    finally:
        options.update(saved)
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
