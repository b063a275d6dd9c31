"""PostgreSQL only: ``dbos_enqueue(...)``, enqueue a workflow from SQL (triggers, PL/pgSQL).

It writes the same ENQUEUED (or DELAYED) status row as ``Queue.enqueue`` (see
``engine/queues.py`` and ``system_db.enqueue_workflow``), so the enqueue NOTIFY trigger of 0005
wakes idle workers when the calling transaction commits. Inputs are stored as the JSON
serializer's text of ``{"args": [...], "kwargs": {...}}``. Every refusal is a ``RAISE
EXCEPTION`` naming the problem, and nothing is written. See docs/sql-enqueue.md.
"""

from django.db import migrations

# Errors: 22023 invalid_parameter_value (bad argument), 42704 undefined_object (unknown
# queue), 23505 unique_violation (deduplication ID held by a live workflow, or the workflow ID
# taken by another workflow), 55000 object_not_in_prerequisite_state (no version to stamp).
CREATE = r"""
CREATE OR REPLACE FUNCTION dbos_enqueue(
    queue_name text,
    workflow_name text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    workflow_id text DEFAULT NULL,
    priority integer DEFAULT 0,
    deduplication_id text DEFAULT NULL,
    partition_key text DEFAULT NULL,
    delay_seconds double precision DEFAULT 0,
    app_version text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    q record;
    holder record;
    wf_id text := dbos_enqueue.workflow_id;
    a jsonb := COALESCE(dbos_enqueue.args, '[]'::jsonb);
    kw jsonb := COALESCE(dbos_enqueue.kwargs, '{}'::jsonb);
    prio integer := COALESCE(dbos_enqueue.priority, 0);
    delay double precision := COALESCE(dbos_enqueue.delay_seconds, 0);
    version text := dbos_enqueue.app_version;
    now_ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    delay_ms bigint;
    inserted text;
    existing_name text;
    finished text[] := ARRAY['SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED'];
BEGIN
    IF dbos_enqueue.queue_name IS NULL THEN
        RAISE EXCEPTION 'dbos_enqueue: queue_name must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dbos_enqueue.workflow_name IS NULL OR dbos_enqueue.workflow_name = '' THEN
        RAISE EXCEPTION 'dbos_enqueue: workflow_name must be a registered workflow name, not %',
            COALESCE(quote_literal(dbos_enqueue.workflow_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO q FROM dbos_queues WHERE name = dbos_enqueue.queue_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dbos_enqueue: unknown queue %', quote_literal(dbos_enqueue.queue_name)
            USING ERRCODE = 'undefined_object',
                  HINT = 'A queue is recorded in dbos_queues when a worker starts serving it '
                         'or a process first enqueues to it from Python.';
    END IF;
    IF jsonb_typeof(a) <> 'array' THEN
        RAISE EXCEPTION 'dbos_enqueue: args must be a JSON array, not a JSON %', jsonb_typeof(a)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(kw) <> 'object' THEN
        RAISE EXCEPTION 'dbos_enqueue: kwargs must be a JSON object, not a JSON %',
            jsonb_typeof(kw)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_path_exists(a, 'strict $.** ? (@.type() == "object" && exists(@."__dbos__"))')
        OR jsonb_path_exists(kw, 'strict $.** ? (@.type() == "object" && exists(@."__dbos__"))')
    THEN
        RAISE EXCEPTION 'dbos_enqueue: args and kwargs must be plain JSON; the object key '
                        '"__dbos__" is reserved for the serializer''s tagged values'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF prio < 0 THEN
        RAISE EXCEPTION 'dbos_enqueue: priority must be 0 or more, not %', prio
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF prio <> 0 AND NOT q.priority_enabled THEN
        RAISE EXCEPTION 'dbos_enqueue: priority must be 0: queue % was declared without '
                        'priority_enabled=True', quote_literal(q.name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF q.partition_queue AND dbos_enqueue.partition_key IS NULL THEN
        RAISE EXCEPTION 'dbos_enqueue: partition_key is required: queue % is partitioned',
            quote_literal(q.name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT q.partition_queue AND dbos_enqueue.partition_key IS NOT NULL THEN
        RAISE EXCEPTION 'dbos_enqueue: partition_key must be NULL: queue % was declared '
                        'without partition_queue=True', quote_literal(q.name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- NaN sorts above every number in PostgreSQL, so this also refuses NaN and infinity
    IF NOT (delay >= 0 AND delay < 'Infinity'::double precision) THEN
        RAISE EXCEPTION 'dbos_enqueue: delay_seconds must be a number of seconds, 0 or more, '
                        'not %', delay
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF wf_id = '' THEN
        RAISE EXCEPTION 'dbos_enqueue: workflow_id must be NULL (generate one) or non-empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF version = '' THEN
        RAISE EXCEPTION 'dbos_enqueue: app_version must be NULL (take the live workers'' '
                        'version) or non-empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF version IS NULL THEN
        -- the newest live executor's version (live: heartbeat within the default
        -- EXECUTOR_TIMEOUT of 30 s); its workers are the ones that will claim the row
        SELECT application_version INTO version FROM dbos_executors
         WHERE application_version IS NOT NULL AND application_version <> ''
           AND last_heartbeat >= now_ms - 30000
         ORDER BY started_at DESC, last_heartbeat DESC
         LIMIT 1;
        IF version IS NULL THEN
            RAISE EXCEPTION 'dbos_enqueue: no app_version given and no live executor in '
                            'dbos_executors to take it from'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Pass app_version => ''...'' (the APPLICATION_VERSION of the '
                             'workers that should run it), or start a worker first.';
        END IF;
    END IF;
    delay_ms := floor(delay * 1000)::bigint;
    IF wf_id IS NULL THEN
        wf_id := gen_random_uuid()::text;
    END IF;

    -- As system_db.enqueue_workflow: a conflict on the ID or on (queue, dedup ID) inserts
    -- nothing; a finished holder of the dedup ID releases it and the insert is retried.
    FOR attempt IN 1..3 LOOP
        INSERT INTO dbos_workflow_status (
            workflow_uuid, status, name, inputs, application_version, recovery_attempts,
            queue_name, queue_partition_key, priority, deduplication_id,
            delay_until_epoch_ms, created_at, updated_at)
        VALUES (
            wf_id,
            CASE WHEN delay_ms > 0 THEN 'DELAYED' ELSE 'ENQUEUED' END,
            dbos_enqueue.workflow_name,
            jsonb_build_object('args', a, 'kwargs', kw)::text,
            version,
            0,
            q.name,
            dbos_enqueue.partition_key,
            prio,
            dbos_enqueue.deduplication_id,
            CASE WHEN delay_ms > 0 THEN now_ms + delay_ms END,
            now_ms,
            now_ms)
        ON CONFLICT DO NOTHING
        RETURNING workflow_uuid INTO inserted;
        IF inserted IS NOT NULL THEN
            RETURN wf_id;
        END IF;
        SELECT name INTO existing_name FROM dbos_workflow_status WHERE workflow_uuid = wf_id;
        IF FOUND THEN
            IF existing_name IS DISTINCT FROM dbos_enqueue.workflow_name THEN
                RAISE EXCEPTION 'dbos_enqueue: workflow ID % already belongs to workflow %, '
                                'not %', quote_literal(wf_id), quote_literal(existing_name),
                                quote_literal(dbos_enqueue.workflow_name)
                    USING ERRCODE = 'unique_violation';
            END IF;
            RETURN wf_id;  -- idempotent on the workflow ID, as Queue.enqueue
        END IF;
        IF dbos_enqueue.deduplication_id IS NULL THEN
            CONTINUE;  -- the conflicting row went away meanwhile
        END IF;
        SELECT workflow_uuid, status INTO holder FROM dbos_workflow_status
         WHERE queue_name = q.name AND deduplication_id = dbos_enqueue.deduplication_id;
        IF FOUND AND NOT (holder.status = ANY (finished)) THEN
            EXIT;
        END IF;
        IF FOUND THEN
            UPDATE dbos_workflow_status SET deduplication_id = NULL
             WHERE workflow_uuid = holder.workflow_uuid AND status = ANY (finished);
        END IF;
    END LOOP;
    RAISE EXCEPTION 'dbos_enqueue: deduplication ID % is held by live workflow % on queue %',
        quote_literal(dbos_enqueue.deduplication_id),
        COALESCE(quote_literal(holder.workflow_uuid), '?'), quote_literal(q.name)
        USING ERRCODE = 'unique_violation';
END;
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS dbos_enqueue(
    text, text, jsonb, jsonb, text, integer, text, text, double precision, text);
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            # no parameters: the function body's % (RAISE formats) must reach the server as is
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("django_dbos", "0005_postgres_enqueue_notify")]

    operations = [migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP))]
