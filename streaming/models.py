from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from gtvision.tenancy import TenantQuerySet


class Stream(models.Model):
    """A live stream of one camera. Its row is the truth the media supervisor reconciles to."""

    class Status(models.TextChoices):
        STOPPED = "STOPPED", _("stopped")
        STARTING = "STARTING", _("starting")
        RUNNING = "RUNNING", _("running")
        ERROR = "ERROR", _("error")

    class Profile(models.TextChoices):
        """Which of the camera's streams: the main one (camera page, recording) or its
        low-resolution substream (grids, mosaics; the main one when it has none)."""

        MAIN = "main", _("main stream")
        SUB = "sub", _("substream")

    ACTIVE = (Status.STARTING, Status.RUNNING, Status.ERROR)

    camera = models.ForeignKey(
        "cidades.Camera", on_delete=models.CASCADE, related_name="streams", verbose_name=_("camera")
    )
    profile = models.CharField(
        _("profile"), max_length=4, choices=Profile.choices, default=Profile.MAIN
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.STARTING
    )
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    # Opened for viewers (the dashboard): stops by itself VIEWER_IDLE_SECONDS after the last
    # viewer's keep-alive (``last_viewed_at``). Started explicitly: runs until stopped.
    on_demand = models.BooleanField(_("on demand"), default=False)
    last_viewed_at = models.DateTimeField(_("last viewed at"), null=True, blank=True)
    # Measured by the media supervisor (null while unknown).
    running_since = models.DateTimeField(_("running since"), null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    bitrate_kbps = models.FloatField(null=True, blank=True)
    bytes_received = models.BigIntegerField(null=True, blank=True)
    readers = models.IntegerField(null=True, blank=True)
    last_frame_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    metrics_at = models.DateTimeField(null=True, blank=True)

    tenant_lookup = "camera__prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = _("stream")
        verbose_name_plural = _("streams")
        constraints = [
            models.UniqueConstraint(
                fields=["camera", "profile"],
                condition=models.Q(status__in=["STARTING", "RUNNING", "ERROR"]),
                name="one_active_stream_per_camera_profile",
            )
        ]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"stream {self.pk} ({self.profile}) of camera {self.camera_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class RecorderStatus(models.Model):
    """What the media supervisor sees of a recorded camera's pull, with or without a live
    stream: a camera that is only recorded has no stream row to show its errors."""

    class Status(models.TextChoices):
        STARTING = "STARTING", _("starting")
        RUNNING = "RUNNING", _("running")
        ERROR = "ERROR", _("error")

    camera = models.OneToOneField(
        "cidades.Camera",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="recorder_status",
        verbose_name=_("camera"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    tenant_lookup = "camera__prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["camera_id"]
        verbose_name = _("recorder status")
        verbose_name_plural = _("recorder statuses")

    def __str__(self) -> str:
        return f"recorder of camera {self.camera_id} ({self.status})"


class WorkerHeartbeat(models.Model):
    """Liveness of long-running processes (media supervisor), shown by /health."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=30)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    engine = models.CharField(max_length=20, blank=True)
    details = models.JSONField(default=dict, blank=True)
    beat_at = models.DateTimeField()

    class Meta:
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%H:%M:%S}"


class RecorderNode(models.Model):
    """A media supervisor process (``manage.py media_supervisor``): it pulls the cameras it
    holds a ``CameraLease`` on (streaming/leases.py, docs/scaling.md)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    host = models.CharField(_("host"), max_length=255)
    pid = models.IntegerField()
    capacity = models.PositiveIntegerField(_("capacity"))
    # Where other processes reach this node inside the installation (docs/scaling.md).
    internal_url = models.CharField(_("internal URL"), max_length=300, blank=True)
    started_at = models.DateTimeField(_("started at"))
    heartbeat_at = models.DateTimeField(_("heartbeat at"))
    draining = models.BooleanField(_("draining"), default=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("recorder node")
        verbose_name_plural = _("recorder nodes")

    def __str__(self) -> str:
        return f"node {self.name}"


class CameraLease(models.Model):
    """Which node pulls a camera, until ``expires_at`` unless renewed. ``generation`` grows at
    every claim: a node renews only the generation it claimed (fencing)."""

    camera = models.OneToOneField(
        "cidades.Camera",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="lease",
        verbose_name=_("camera"),
    )
    node = models.ForeignKey(
        RecorderNode,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="leases",
        verbose_name=_("node"),
    )
    generation = models.BigIntegerField(_("generation"), default=0)
    expires_at = models.DateTimeField(_("expires at"))
    acquired_at = models.DateTimeField(_("acquired at"), null=True, blank=True)

    class Meta:
        ordering = ["camera_id"]
        verbose_name = _("camera lease")
        verbose_name_plural = _("camera leases")

    def __str__(self) -> str:
        return f"lease of camera {self.camera_id} (node {self.node_id}, gen {self.generation})"
