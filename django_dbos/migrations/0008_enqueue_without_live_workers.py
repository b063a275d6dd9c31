"""PostgreSQL only: two changes for rows enqueued while no worker is up.

- ``dbos_enqueue(...)`` without ``app_version`` and with no live executor to take a version from
  now writes the row with no version instead of raising. Workers claim version-less rows (and
  stamp their own, as for a ``DBOSClient`` enqueue), so an ``AFTER INSERT`` trigger that enqueues
  no longer fails, and rolls back, the application's own INSERT while the workers are down.
- The enqueue ``NOTIFY`` (0005) also fires for DELAYED inserts (delayed and debounced
  workflows), so idle workers in other processes learn when to wake for them.
"""

import importlib

from django.db import migrations

_0005 = importlib.import_module("django_dbos.migrations.0005_postgres_enqueue_notify")
_0006 = importlib.import_module("django_dbos.migrations.0006_postgres_enqueue_function")

_NO_LIVE_EXECUTOR = """        IF version IS NULL THEN
            RAISE EXCEPTION 'dbos_enqueue: no app_version given and no live executor in '
                            'dbos_executors to take it from'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Pass app_version => ''...'' (the APPLICATION_VERSION of the '
                             'workers that should run it), or start a worker first.';
        END IF;
"""
_ANY_VERSION = """        -- no live executor: no version; the claiming worker stamps its own
"""
assert _NO_LIVE_EXECUTOR in _0006.CREATE
ENQUEUE_ANY_VERSION = _0006.CREATE.replace(_NO_LIVE_EXECUTOR, _ANY_VERSION)

_ENQUEUED_ONLY = "WHEN (NEW.status = 'ENQUEUED' AND NEW.queue_name IS NOT NULL)"
_ENQUEUED_OR_DELAYED = "WHEN (NEW.status IN ('ENQUEUED', 'DELAYED') AND NEW.queue_name IS NOT NULL)"
assert _ENQUEUED_ONLY in _0005.CREATE
NOTIFY_DELAYED_TOO = (
    "DROP TRIGGER IF EXISTS dbos_workflow_enqueued_notify ON dbos_workflow_status;\n"
    + (_0005.CREATE.replace(_ENQUEUED_ONLY, _ENQUEUED_OR_DELAYED))
)
NOTIFY_ENQUEUED_ONLY = (
    "DROP TRIGGER IF EXISTS dbos_workflow_enqueued_notify ON dbos_workflow_status;\n" + _0005.CREATE
)


def _on_postgres(*sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            # no parameters: the function body's % (RAISE formats) must reach the server as is
            with schema_editor.connection.cursor() as cursor:
                for statement in sql:
                    cursor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("django_dbos", "0007_queue_partition_limiter")]

    operations = [
        migrations.RunPython(
            _on_postgres(ENQUEUE_ANY_VERSION, NOTIFY_DELAYED_TOO),
            _on_postgres(_0006.CREATE, NOTIFY_ENQUEUED_ONLY),
        )
    ]
