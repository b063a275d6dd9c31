"""PostgreSQL only: NOTIFY ``dbos_workflow_enqueued`` (payload: the queue name) when a workflow
is enqueued, so idle workers' dispatchers claim it at once instead of at their next poll.

The trigger fires inside the enqueuing transaction; PostgreSQL delivers the notification only
when it commits (a rolled-back transactional enqueue wakes nobody). Its WHEN clause is false for
the hot path's PENDING inserts, which therefore pay nothing for it.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION dbos_notify_enqueued() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dbos_workflow_enqueued', NEW.queue_name);
    RETURN NEW;
END; $$ LANGUAGE plpgsql;
CREATE TRIGGER dbos_workflow_enqueued_notify AFTER INSERT ON dbos_workflow_status
    FOR EACH ROW WHEN (NEW.status = 'ENQUEUED' AND NEW.queue_name IS NOT NULL)
    EXECUTE FUNCTION dbos_notify_enqueued();
"""

DROP = """
DROP TRIGGER IF EXISTS dbos_workflow_enqueued_notify ON dbos_workflow_status;
DROP FUNCTION IF EXISTS dbos_notify_enqueued();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("django_dbos", "0004_queue_delay_and_limiter_index")]

    operations = [migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP))]
