"""Segment locations stay under RECORDINGS_DIR: no absolute path, no ``..``."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recordings", "0003_segment_location"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="segment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("location__startswith", "/"), _negated=True),
                    models.Q(("location__contains", ".."), _negated=True),
                ),
                name="segment_location_relative",
            ),
        ),
    ]
