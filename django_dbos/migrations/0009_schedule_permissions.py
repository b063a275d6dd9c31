"""Permissions for the admin's schedule operations: pause (and resume), trigger now, backfill.

No schema change: Django creates the permission rows after ``migrate`` (``post_migrate``).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("django_dbos", "0008_enqueue_without_live_workers"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="schedule",
            options={
                "permissions": [
                    ("pause_schedule", "Can pause and resume schedules"),
                    ("trigger_schedule", "Can trigger schedules now"),
                    ("backfill_schedule", "Can backfill schedules"),
                ]
            },
        ),
    ]
