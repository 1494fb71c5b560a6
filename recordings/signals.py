"""Files follow their rows: a deleted clip or camera takes its files (and a camera its objects
in the bucket) along, after commit."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from cidades.models import Camera
from recordings import objectstore, storage
from recordings.models import Clip


@receiver(post_delete, sender=Clip)
def remove_clip_file(sender, instance: Clip, **kwargs) -> None:
    clip_id = instance.pk
    transaction.on_commit(lambda: storage.unlink(storage.clip_path(clip_id)))


@receiver(post_delete, sender=Camera)
def remove_camera_recordings(sender, instance: Camera, **kwargs) -> None:
    # Its segment rows went with it (CASCADE, one DELETE: no signal on Segment on purpose).
    camera_id = instance.pk
    transaction.on_commit(lambda: storage.remove_camera(camera_id))
    if objectstore.enabled():
        from recordings.tasks import remove_camera_objects

        transaction.on_commit(lambda: remove_camera_objects.defer(camera_id=camera_id))
