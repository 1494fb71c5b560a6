"""Files follow their rows: a deleted clip or camera takes its files along (after commit)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from cidades.models import Camera
from recordings import storage
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
