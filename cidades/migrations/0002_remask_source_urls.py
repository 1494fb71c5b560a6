"""Re-mask stored ``source_url_masked`` values: credentials in query or path parameters
(``?user=admin&password=...``) were kept in clear by the first masking rule."""

from django.db import migrations

from cidades.validators import mask_source_url


def remask(apps, schema_editor) -> None:
    Camera = apps.get_model("cidades", "Camera")
    for camera in Camera.objects.only("pk", "source_url_masked").iterator():
        masked = mask_source_url(camera.source_url_masked)
        if masked != camera.source_url_masked:
            Camera.objects.filter(pk=camera.pk).update(source_url_masked=masked)


class Migration(migrations.Migration):
    dependencies = [("cidades", "0001_initial")]

    operations = [migrations.RunPython(remask, migrations.RunPython.noop)]
