"""Recording sessions, indexed segments and exported clips.

A ``Segment`` row is one closed MPEG-TS file. Rows are kept narrow (tens of millions at city
scale): no duration column (``end - start``), and where the file lives is stored only when it
is not where its camera and start put it (``storage`` + ``location``, see ``Segment``). The
unique constraint on (camera, start) is both the exactly-once guarantee of the indexer and the
index that every (camera, time) query scans.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from gtvision.tenancy import TenantQuerySet


def segment_lookback() -> timedelta:
    """Upper bound of a segment's duration, which keeps overlap queries on one index range."""
    return timedelta(seconds=settings.RECORDING_SEGMENT_MAX_SECONDS)


class Recording(models.Model):
    """A recording session: the camera is recorded from ``started_at`` to ``ended_at``."""

    class Status(models.TextChoices):
        RECORDING = "RECORDING", _("recording")
        STOPPED = "STOPPED", _("stopped")

    camera = models.ForeignKey(
        "cidades.Camera",
        on_delete=models.CASCADE,
        related_name="recordings",
        verbose_name=_("camera"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.RECORDING
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("stopped by"),
    )

    tenant_lookup = "camera__prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("recording")
        verbose_name_plural = _("recordings")
        constraints = [
            models.UniqueConstraint(
                fields=["camera"],
                condition=models.Q(status="RECORDING"),
                name="one_open_recording_per_camera",
            )
        ]

    def __str__(self) -> str:
        return f"recording {self.pk} of camera {self.camera_id} ({self.status})"

    @cached_property
    def stats(self) -> dict:
        """Footage recorded during the session: segment count, bytes and seconds."""
        until = self.ended_at or timezone.now()
        totals = (
            Segment.objects.filter(camera_id=self.camera_id)
            .filter(start__gte=self.started_at, start__lt=until)
            .aggregate(
                segment_count=Count("id"),
                size_bytes=Sum("size_bytes"),
                duration=Sum(
                    ExpressionWrapper(F("end") - F("start"), output_field=DurationField())
                ),
            )
        )
        duration = totals["duration"]
        return {
            "segment_count": totals["segment_count"],
            "size_bytes": totals["size_bytes"] or 0,
            "duration_s": round(duration.total_seconds(), 3) if duration else 0.0,
        }


class SegmentQuerySet(TenantQuerySet):
    def overlapping(self, start: datetime, end: datetime) -> SegmentQuerySet:
        """Segments overlapping ``[start, end)``, as one range on the (camera, start) index."""
        return self.filter(start__gte=start - segment_lookback(), start__lt=end, end__gt=start)


class Segment(models.Model):
    """One closed recording file of a camera, covering ``[start, end)`` (UTC wall clock).

    Where the file lives: ``storage`` (the tier: local disk today; an object store tier adds
    a member) and ``location``, the file's path relative to ``RECORDINGS_DIR`` (an object key
    on another tier). An empty ``location`` (what the indexer writes, and the database's
    default for rows inserted by other code) is the canonical path
    ``cam<camera>/YYYY/MM/DD/<floor(start) UTC>.ts``: a segment's file is named after the UTC
    second it opened in, and the indexer only refines a start within that second, so the
    path is unambiguous and 50 M rows carry no 36-byte path each. ``recordings.storage``
    resolves both (``segment_file``); retention and ``check_footage`` delete and check by it.
    """

    class Storage(models.IntegerChoices):
        LOCAL = 0, _("local disk")
        S3 = 1, _("object storage (S3)")

    camera = models.ForeignKey(
        "cidades.Camera",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the (camera, start) unique index serves every lookup
        verbose_name=_("camera"),
    )
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"))
    storage = models.PositiveSmallIntegerField(
        _("storage"), choices=Storage.choices, default=Storage.LOCAL, db_default=Storage.LOCAL
    )
    location = models.CharField(
        _("location"),
        max_length=255,
        blank=True,
        default="",
        db_default="",
        help_text=_("Path under the recordings directory; empty: derived from camera and start."),
    )
    # chain of custody: the file's SHA-256, computed once by the indexer (empty: not known)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True, default="", db_default="")

    tenant_lookup = "camera__prefeitura_id"
    objects = SegmentQuerySet.as_manager()

    class Meta:
        ordering = ["camera_id", "start"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        # The table is partitioned by day on "start" (recordings.partitions, migration 0007;
        # the database's primary key is (id, start)): any unique constraint must include start.
        constraints = [
            # "end" rides in the index: timeline and overlap queries are index-only scans
            # instead of one heap page per segment (rows of a camera are spread over the heap).
            models.UniqueConstraint(
                fields=["camera", "start"], include=["end"], name="one_segment_per_start"
            ),
            models.CheckConstraint(
                condition=models.Q(end__gt=F("start")), name="segment_end_after_start"
            ),
            # a location stays under RECORDINGS_DIR (retention deletes what it names)
            models.CheckConstraint(
                condition=~models.Q(location__startswith="/") & ~models.Q(location__contains=".."),
                name="segment_location_relative",
            ),
        ]

    def __str__(self) -> str:
        return f"camera {self.camera_id} {self.start:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_s(self) -> float:
        return round((self.end - self.start).total_seconds(), 3)


class Clip(models.Model):
    """An export of ``[start, end]`` of one camera as an MP4 file, made by a worker job."""

    class Status(models.TextChoices):
        PENDING = "PENDING", _("pending")
        RUNNING = "RUNNING", _("running")
        DONE = "DONE", _("done")
        FAILED = "FAILED", _("failed")

    camera = models.ForeignKey(
        "cidades.Camera", on_delete=models.CASCADE, related_name="clips", verbose_name=_("camera")
    )
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    progress = models.FloatField(_("progress"), default=0.0)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    duration_s = models.FloatField(_("duration (s)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    protocol = models.CharField(_("protocol"), max_length=100, blank=True)
    # the signed chain-of-custody manifest (JSON, recordings.custody), written when DONE
    custody_manifest = models.TextField(_("custody manifest"), blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)

    tenant_lookup = "camera__prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = _("clip")
        verbose_name_plural = _("clips")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=F("start")), name="clip_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"clip {self.pk} of camera {self.camera_id} ({self.status})"


class EvidenceLockQuerySet(TenantQuerySet):
    def active(self, now: datetime | None = None) -> EvidenceLockQuerySet:
        """Locks in force: without expiry or expiring after ``now``."""
        now = now or timezone.now()
        return self.filter(models.Q(expires_at=None) | models.Q(expires_at__gt=now))


class EvidenceLock(models.Model):
    """A camera's footage in ``[start, end)`` kept as evidence: retention and the disk floor
    never delete a segment overlapping an active lock (``recordings.evidence``)."""

    camera = models.ForeignKey(
        "cidades.Camera",
        on_delete=models.CASCADE,
        related_name="evidence_locks",
        verbose_name=_("camera"),
    )
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    reason = models.CharField(_("reason"), max_length=500)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    tenant_lookup = "camera__prefeitura_id"
    objects = EvidenceLockQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("evidence lock")
        verbose_name_plural = _("evidence locks")
        indexes = [models.Index(fields=["camera", "start"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=F("start")), name="evidence_lock_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"evidence lock {self.pk} of camera {self.camera_id}"
