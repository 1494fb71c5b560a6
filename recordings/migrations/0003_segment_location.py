"""Where each segment's file lives: a storage tier and a location (see ``Segment``).

Both columns have database defaults, so rows inserted by other code (bulk loads, SQL) keep
working. Existing rows need no data migration: the indexer wrote every one of them at its
canonical path (camera + UTC second of its start), which an empty ``location`` stands for;
``manage.py check_footage`` verifies that on disk.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recordings", "0002_segment_index_covers_end"),
    ]

    operations = [
        migrations.AddField(
            model_name="segment",
            name="storage",
            field=models.PositiveSmallIntegerField(
                choices=[(0, "local disk")], db_default=0, default=0, verbose_name="storage"
            ),
        ),
        migrations.AddField(
            model_name="segment",
            name="location",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                help_text="Path under the recordings directory; empty: derived from camera and start.",
                max_length=255,
                verbose_name="location",
            ),
        ),
    ]
