"""PostgreSQL only: NOTIFY on new messages, events, stream entries and finished workflows.

Waiters in every process (``engine/wakeups.py``) LISTEN on these channels instead of polling.
A trigger fires inside the writing transaction and PostgreSQL delivers the notification only
when it commits, so a waiter is never woken before the row is visible. Payloads are the IDs the
waiters key on, joined by chr(31). SQLite needs none of this (it polls).
"""

from django.db import migrations

TERMINAL = "('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')"

CREATE = f"""
CREATE OR REPLACE FUNCTION dbos_notify_message() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dbos_notifications',
                      NEW.destination_uuid || chr(31) || COALESCE(NEW.topic, ''));
    RETURN NEW;
END; $$ LANGUAGE plpgsql;
CREATE TRIGGER dbos_notifications_notify AFTER INSERT ON dbos_notifications
    FOR EACH ROW EXECUTE FUNCTION dbos_notify_message();

CREATE OR REPLACE FUNCTION dbos_notify_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dbos_events', NEW.workflow_uuid || chr(31) || NEW.key);
    RETURN NEW;
END; $$ LANGUAGE plpgsql;
CREATE TRIGGER dbos_workflow_events_notify AFTER INSERT OR UPDATE ON dbos_workflow_events
    FOR EACH ROW EXECUTE FUNCTION dbos_notify_event();

CREATE OR REPLACE FUNCTION dbos_notify_stream() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dbos_streams', NEW.workflow_uuid || chr(31) || NEW.key);
    RETURN NEW;
END; $$ LANGUAGE plpgsql;
CREATE TRIGGER dbos_streams_notify AFTER INSERT ON dbos_streams
    FOR EACH ROW EXECUTE FUNCTION dbos_notify_stream();

CREATE OR REPLACE FUNCTION dbos_notify_finished() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dbos_workflow_finished', NEW.workflow_uuid);
    RETURN NEW;
END; $$ LANGUAGE plpgsql;
CREATE TRIGGER dbos_workflow_finished_notify AFTER UPDATE OF status ON dbos_workflow_status
    FOR EACH ROW WHEN (NEW.status IN {TERMINAL} AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION dbos_notify_finished();
"""

DROP = """
DROP TRIGGER IF EXISTS dbos_notifications_notify ON dbos_notifications;
DROP TRIGGER IF EXISTS dbos_workflow_events_notify ON dbos_workflow_events;
DROP TRIGGER IF EXISTS dbos_streams_notify ON dbos_streams;
DROP TRIGGER IF EXISTS dbos_workflow_finished_notify ON dbos_workflow_status;
DROP FUNCTION IF EXISTS dbos_notify_message();
DROP FUNCTION IF EXISTS dbos_notify_event();
DROP FUNCTION IF EXISTS dbos_notify_stream();
DROP FUNCTION IF EXISTS dbos_notify_finished();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("django_dbos", "0002_stream_writes_once")]

    operations = [migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP))]
