"""Queues: `delay_until_epoch_ms` (delayed enqueue), `partition_concurrency` in `dbos_queues`,
and the index the rate limiter counts starts with."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_dbos', '0003_postgres_notify_triggers'),
    ]

    operations = [
        migrations.AddField(
            model_name='queueconfig',
            name='partition_concurrency',
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='workflowstatus',
            name='delay_until_epoch_ms',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='workflowstatus',
            index=models.Index(fields=['queue_name', 'started_at_epoch_ms'], name='dbos_wf_queue_started'),
        ),
    ]
