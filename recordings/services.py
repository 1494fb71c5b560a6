"""Recording sessions and clips: every write goes through here, then its event is published."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError

from admin_ctx import audit
from admin_ctx.models import User
from cidades.models import Camera
from gtvision import events
from gtvision.api import Conflict
from gtvision.errors import QuotaExceeded
from recordings import access, storage
from recordings.models import Clip, Recording, Segment


def _camera_event(camera: Camera) -> None:
    events.publish(
        events.CameraUpdated(
            camera_id=camera.pk,
            prefeitura_id=camera.prefeitura_id,
            status=camera.status,
            name=camera.name,
        )
    )


def _open_session(camera: Camera) -> Recording | None:
    return Recording.objects.filter(camera=camera, status=Recording.Status.RECORDING).first()


def _close(recording: Recording, actor: User | None) -> Recording:
    recording.status = Recording.Status.STOPPED
    recording.ended_at = timezone.now()
    recording.stopped_by = actor
    recording.save(update_fields=["status", "ended_at", "stopped_by"])
    return recording


def _set_recording_enabled(camera: Camera, value: bool) -> None:
    if camera.recording_enabled != value:
        camera.recording_enabled = value
        camera.save(update_fields=["recording_enabled", "updated_at"])
        _camera_event(camera)


def ensure_recording_session(camera: Camera) -> Recording | None:
    """Match the camera's sessions to its configuration (for the media supervisor).

    A camera that is ``enabled`` and ``recording_enabled`` gets an open session if it has
    none; any other camera gets its open session closed. Returns the open session, if any.
    Idempotent and cheap when nothing changes (two indexed reads); a change re-reads the
    camera under lock, so a stale ``camera`` is harmless.
    """
    fresh = Camera.objects.filter(pk=camera.pk).values("enabled", "recording_enabled").first()
    session = _open_session(camera)
    if fresh is None or (fresh["enabled"] and fresh["recording_enabled"]) == (session is not None):
        return session
    with transaction.atomic():
        camera = Camera.objects.select_for_update().get(pk=camera.pk)
        session = _open_session(camera)
        wanted = camera.enabled and camera.recording_enabled
        if wanted and session is None:
            try:
                with transaction.atomic():
                    session = Recording.objects.create(camera=camera)
            except IntegrityError:  # opened meanwhile
                session = _open_session(camera)
        elif not wanted and session is not None:
            _close(session, None)
            session = None
    return session


def start_recording(
    camera: Camera, *, actor: User | None, request: HttpRequest | None = None
) -> Recording:
    """Record the camera continuously from now on (``recording_enabled``); 409 if it is."""
    with transaction.atomic():
        camera = Camera.objects.select_for_update().get(pk=camera.pk)
        session = _open_session(camera)
        if session is not None:
            raise Conflict(_("This camera is already recording."), recording_id=session.pk)
        if not camera.enabled:
            raise Conflict(_("This camera is disabled."), camera_id=camera.pk)
        _set_recording_enabled(camera, True)
        session = Recording.objects.create(camera=camera, started_by=actor)
        audit.record("recording.start", actor=actor, request=request, target=camera,
                     details={"recording_id": session.pk})  # fmt: skip
    return session


def stop_recording(
    camera: Camera, *, actor: User | None, request: HttpRequest | None = None
) -> Recording:
    """Stop recording the camera. Stopping a stopped camera returns its last session."""
    with transaction.atomic():
        camera = Camera.objects.select_for_update().get(pk=camera.pk)
        session = _open_session(camera)
        was_recording = camera.recording_enabled and camera.enabled
        if session is None and not was_recording:
            last = Recording.objects.filter(camera=camera).first()
            if last is None:
                raise Conflict(_("This camera is not recording."), camera_id=camera.pk)
            _set_recording_enabled(camera, False)
            return last
        if session is None:  # recorded by configuration, before the supervisor opened a session
            session = Recording.objects.create(camera=camera)
        _set_recording_enabled(camera, False)
        _close(session, actor)
        audit.record("recording.stop", actor=actor, request=request, target=camera,
                     details={"recording_id": session.pk})  # fmt: skip
    return session


# -- clips -----------------------------------------------------------------------------------


def create_clip(
    camera: Camera,
    start: datetime,
    end: datetime,
    *,
    actor: User | None,
    request: HttpRequest | None = None,
    reason: str | None = None,
    protocol: str | None = None,
) -> Clip:
    """Queue the export of ``[start, end]``; 400 unless it is a recorded, short enough range
    (and justified, where the prefeitura requires a reason), ``QuotaExceeded`` (429) past the
    clip quotas."""
    from recordings.tasks import build_clip  # tasks -> clips -> services: import when used

    limit = settings.CLIP_MAX_SECONDS
    if end <= start:
        raise ValidationError({"end": [_("End must be after start.")]})
    if (end - start).total_seconds() > limit:
        raise ValidationError({"end": [_("A clip lasts at most %(n)d seconds.") % {"n": limit}]})
    justified = access.justification(actor, camera, reason, protocol)
    recorded = Segment.objects.filter(camera=camera).overlapping(start, end)
    if not recorded.exists():
        raise ValidationError({"start": [_("Nothing was recorded in this period.")]})
    with transaction.atomic():
        _check_clip_quotas(camera, actor, recorded)
        clip = Clip.objects.create(
            camera=camera,
            start=start,
            end=end,
            created_by=actor,
            expires_at=timezone.now() + timedelta(days=settings.CLIP_EXPIRY_DAYS),
            reason=justified.get("reason", ""),
            protocol=justified.get("protocol", ""),
        )
        # The job is a row in the same database: it commits (or not) with the clip.
        build_clip.defer(clip_id=clip.pk)
        details = {"clip_id": clip.pk, "start": start.isoformat(), "end": end.isoformat()}
        details.update(justified)
        audit.record("clip.create", actor=actor, request=request, target=camera, details=details)
        _clip_progress_event(clip)
    return clip


CLIP_QUOTA_LOCK = 0x67747163  # pg_advisory_xact_lock(class, prefeitura_id): "gtqc"


def _check_clip_quotas(camera: Camera, actor: User | None, recorded: QuerySet[Segment]) -> None:
    """Raise ``QuotaExceeded`` past the exports waiting or running per user and per
    prefeitura, or past the prefeitura's clip storage (kept clips plus this one, estimated
    from its footage). Holds the prefeitura's lock until the caller's transaction ends, so
    concurrent requests cannot both take the last place."""
    prefeitura_id = camera.prefeitura_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CLIP_QUOTA_LOCK, prefeitura_id])
    active = Clip.objects.filter(status__in=[Clip.Status.PENDING, Clip.Status.RUNNING])
    limit = settings.CLIP_MAX_PENDING_PER_USER
    if actor is not None and active.filter(created_by=actor).count() >= limit:
        raise QuotaExceeded(
            _("You already have %(n)d clip exports waiting or running: wait for one to finish.")
            % {"n": limit}
        )
    limit = settings.CLIP_MAX_PENDING_PER_PREFEITURA
    if active.filter(camera__prefeitura_id=prefeitura_id).count() >= limit:
        raise QuotaExceeded(
            _(
                "This prefeitura already has %(n)d clip exports waiting or running: try again "
                "when one finishes."
            )
            % {"n": limit}
        )
    limit = settings.CLIP_MAX_BYTES_PER_PREFEITURA
    kept = (
        Clip.objects.filter(
            camera__prefeitura_id=prefeitura_id,
            status=Clip.Status.DONE,
            expires_at__gt=timezone.now(),
        ).aggregate(total=Sum("size_bytes"))["total"]
        or 0
    )
    estimate = recorded.aggregate(total=Sum("size_bytes"))["total"] or 0
    if kept + estimate > limit:
        raise QuotaExceeded(
            _(
                "The clips of this prefeitura take %(used)s of the %(limit)s allowed: wait for "
                "old clips to expire."
            )
            % {"used": filesizeformat(kept), "limit": filesizeformat(limit)}
        )


def _clip_progress_event(clip: Clip) -> None:
    events.publish(
        events.ClipProgress(
            camera_id=clip.camera_id,
            prefeitura_id=clip.camera.prefeitura_id,
            clip_id=clip.pk,
            status=clip.status,
            progress=round(clip.progress, 3),
        )
    )


def _clip_done_event(clip: Clip) -> None:
    events.publish(
        events.ClipDone(
            camera_id=clip.camera_id,
            prefeitura_id=clip.camera.prefeitura_id,
            clip_id=clip.pk,
            status=clip.status,
            size_bytes=clip.size_bytes,
            duration_s=clip.duration_s,
            sha256=clip.sha256,
            error=clip.error,
        )
    )


def claim_clip(clip_id: int) -> Clip | None:
    """PENDING -> RUNNING for the worker; None when the clip is gone or already handled."""
    with transaction.atomic():
        clip = (
            Clip.objects.select_for_update()
            .select_related("camera")
            .filter(pk=clip_id, status=Clip.Status.PENDING)
            .first()
        )
        if clip is None:
            return None
        clip.status = Clip.Status.RUNNING
        clip.progress = 0.0
        clip.save(update_fields=["status", "progress", "updated_at"])
        _clip_progress_event(clip)
    return clip


def clip_progress(clip: Clip, progress: float) -> None:
    clip.progress = min(max(progress, 0.0), 0.99)
    Clip.objects.filter(pk=clip.pk, status=Clip.Status.RUNNING).update(
        progress=clip.progress, updated_at=timezone.now()
    )
    _clip_progress_event(clip)


def finish_clip(
    clip: Clip,
    *,
    size_bytes: int,
    duration_s: float | None,
    sha256: str,
    segments: list[Segment] | None = None,
) -> Clip:
    """Mark the export DONE with its file's facts and its signed custody manifest."""
    from recordings import custody  # custody -> indexer -> events: import when used

    clip.status = Clip.Status.DONE
    clip.progress = 1.0
    clip.size_bytes = size_bytes
    clip.duration_s = duration_s
    clip.sha256 = sha256
    clip.finished_at = timezone.now()
    clip.custody_manifest = custody.sign_manifest(custody.manifest_fields(clip, segments or []))
    clip.save()
    _clip_done_event(clip)
    return clip


def fail_clip(clip: Clip, error: str) -> Clip:
    clip.status = Clip.Status.FAILED
    clip.error = error[:500]
    clip.finished_at = timezone.now()
    clip.save()
    storage.unlink(storage.clip_path(clip.pk))
    _clip_done_event(clip)
    return clip


def audit_clip_download(clip: Clip, *, actor: User, request: HttpRequest | None = None) -> None:
    details = {"clip_id": clip.pk, "sha256": clip.sha256}
    details.update({key: value for key in ("reason", "protocol") if (value := getattr(clip, key))})
    if request is not None and request.headers.get("Range"):
        details["range"] = request.headers["Range"]
    audit.record("clip.download", actor=actor, request=request, target=clip.camera, details=details)


def audit_playback(
    camera: Camera,
    start: datetime,
    end: datetime,
    *,
    actor: User,
    request: HttpRequest | None = None,
    kind: str = "playlist",
    justified: dict[str, str] | None = None,
) -> None:
    """Audit a playback (``justified``: from ``playback_justification``) or a snapshot."""
    action = "recording.playback" if kind == "playlist" else "recording.snapshot"
    details = {"start": start.isoformat(), "end": end.isoformat(), **(justified or {})}
    audit.record(action, actor=actor, request=request, target=camera, details=details)


def playback_justification(
    camera: Camera, *, actor: User, reason: str | None, protocol: str | None
) -> dict[str, str]:
    """Check a playback's reason before its playlist is issued (400 naming ``reason``)."""
    return access.justification(actor, camera, reason, protocol)


def expire_clips(now: datetime | None = None) -> int:
    """Delete clips past ``expires_at`` (and their files); fail clips stuck in RUNNING."""
    now = now or timezone.now()
    expired = list(Clip.objects.filter(expires_at__lte=now).values_list("pk", flat=True))
    Clip.objects.filter(pk__in=expired).delete()  # files: recordings.signals
    stale = now - timedelta(seconds=settings.CLIP_STALE_SECONDS)
    for clip in Clip.objects.select_related("camera").filter(
        status=Clip.Status.RUNNING, updated_at__lt=stale
    ):
        fail_clip(clip, _("The export was interrupted; please request it again."))
    return len(expired)
