"""Media items: images and videos in storage, recognised by content hash."""
from django.db import models


class MediaKind(models.TextChoices):
    IMAGE = "image"
    VIDEO = "video"


class MediaStatus(models.TextChoices):
    READY = "ready"
    FAILED = "failed"


class MediaSource(models.TextChoices):
    UPLOAD = "upload"
    FOLDER = "folder"
    S3 = "s3"


class MediaItem(models.Model):
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="media")
    kind = models.CharField(max_length=8, choices=MediaKind.choices, default=MediaKind.IMAGE)
    name = models.CharField(max_length=500, help_text="Original file name or key.")
    storage_name = models.CharField(max_length=500, help_text="Path of the file in the default storage.")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=8, choices=MediaStatus.choices, default=MediaStatus.READY)
    error = models.TextField(blank=True, help_text="Why the item failed (corrupt, not an image, ...).")
    source = models.CharField(max_length=8, choices=MediaSource.choices, default=MediaSource.UPLOAD)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "sha256"], name="media_unique_content")]

    def __str__(self) -> str:
        return self.name
