"""Data: uploads with their verdicts and reviews, and the registry of model versions.

Models hold data, constraints and small derived properties; the work happens in ``phoneapp/services``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Label(models.TextChoices):
    PHONE = "phone", "Phone"
    NOT_PHONE = "not_phone", "Not a phone"


class Verdict(models.TextChoices):
    """What the pages, the API and the filters say of a model's answer: its label, or unsure when the probability
    is inside its model version's unsure band (:class:`phoneapp.selectors.decisions.DecisionRule`). The labels are
    the words every page shows."""

    PHONE = Label.PHONE.value, Label.PHONE.label
    NOT_PHONE = Label.NOT_PHONE.value, Label.NOT_PHONE.label
    UNSURE = "unsure", "Unsure"


class UploadStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def upload_image_path(instance: Upload, filename: str) -> str:
    """A random name under a date folder; the client's file name never reaches the disk."""
    extension = PurePosixPath(filename).suffix.lower()
    return timezone.now().strftime(f"uploads/%Y/%m/%d/{uuid.uuid4().hex}{extension}")


def thumbnail_path(instance: Upload, filename: str) -> str:
    return timezone.now().strftime(f"thumbnails/%Y/%m/%d/{uuid.uuid4().hex}.jpg")


def heatmap_path(instance: Upload, filename: str) -> str:
    return timezone.now().strftime(f"heatmaps/%Y/%m/%d/{uuid.uuid4().hex}.png")


class ReviewSplit(models.TextChoices):
    """Where a reviewed picture serves: training the next version, or measuring every version (never trained on)."""

    TRAIN = "train", "Train"
    EVAL = "eval", "Eval"


class SecondReview(models.TextChoices):
    """A review that contradicts a confident verdict waits for a second reviewer before it trains anything."""

    NOT_NEEDED = "", "Not needed"
    WAITING = "waiting", "Waiting for a second reviewer"
    AGREED = "agreed", "Second reviewer agreed"
    DISAGREED = "disagreed", "Second reviewer disagreed"


class ModelVersion(models.Model):
    """One trained (or zero-shot) model that can classify uploads; at most one is active at a time."""

    name = models.CharField(max_length=100, unique=True)
    # Directory of the model under settings.MODELS_DIR, holding manifest.json and the files it lists.
    path = models.CharField(max_length=255)
    checksum = models.CharField(max_length=64, help_text="sha256 of the manifest, which pins every file's sha256")
    created = models.DateTimeField(default=timezone.now)
    metrics = models.JSONField(default=dict, blank=True)
    data_summary = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model"),
        ]

    def __str__(self) -> str:
        return self.name


# Second-review states whose first label is not settled (see UploadQuerySet.held_for_second_review).
UNSETTLED_REVIEWS = (SecondReview.WAITING, SecondReview.DISAGREED)
# Classified, with the probability a verdict is judged from: :func:`phoneapp.selectors.decisions.upload_has_verdict`
# in SQL.
HAS_VERDICT = Q(status=UploadStatus.DONE, probability__isnull=False)


class UploadQuerySet(models.QuerySet["Upload"]):
    """The words every reader uses for sets of uploads, so each rule is written once.

    "Unsure" depends on each model version's own threshold and unsure band, read from its manifest by
    :mod:`phoneapp.selectors.decisions`; that module imports this one, so it is reached inside the methods (at
    call time), never when the models load.
    """

    def owned_by(self, owner: User) -> UploadQuerySet:
        return self.filter(owner=owner)

    def done(self) -> UploadQuerySet:
        """Classified: a verdict, a probability and a model version (``done_upload_has_verdict``)."""
        return self.filter(status=UploadStatus.DONE)

    def reviewed(self) -> UploadQuerySet:
        """A reviewer gave a label (the label is what counts; who gave it may since have been deleted)."""
        return self.exclude(reviewed_label="")

    def unreviewed(self) -> UploadQuerySet:
        return self.filter(reviewed_label="")

    def held_for_second_review(self) -> UploadQuerySet:
        """A first review a second reviewer has not agreed with yet (waiting) or contradicted (disagreed): its label
        is not settled, so it neither trains nor becomes ground truth by itself."""
        return self.filter(second_review__in=UNSETTLED_REVIEWS)

    def label_settled(self) -> UploadQuerySet:
        """The rest: no second review needed, or a second reviewer agreed."""
        return self.exclude(second_review__in=UNSETTLED_REVIEWS)

    def with_uncertainty(self) -> UploadQuerySet:
        """Annotated ``uncertainty``: the distance of the probability from its own version's threshold, scaled so
        the unsure band is 0 to 1 (null without a probability); what the review queue sorts by."""
        if "uncertainty" in self.query.annotations:
            return self
        from phoneapp.selectors.decisions import uncertainty_expression

        return self.annotate(uncertainty=uncertainty_expression())

    def with_verdict(self) -> UploadQuerySet:
        """Annotated ``verdict``, the word the pages show (:func:`phoneapp.selectors.decisions.upload_verdict`
        in SQL): ``phone``, ``not_phone`` or ``unsure`` for classified uploads, else the status."""
        verdict = Case(
            When(~HAS_VERDICT, then=F("status")),
            When(uncertainty__lte=1.0, then=Value(Verdict.UNSURE)),
            default=F("predicted_label"),
            output_field=models.CharField(),
        )
        return self.with_uncertainty().annotate(verdict=verdict)

    def unsure(self) -> UploadQuerySet:
        """Classified uploads inside the unsure band of the version that judged them (the pages' "Unsure")."""
        # The ignore: "verdict" is with_verdict()'s annotation, which the django-stubs plugin cannot follow out of a
        # custom QuerySet method.
        return self.with_verdict().filter(verdict=Verdict.UNSURE)  # type: ignore[misc]

    def confident(self) -> UploadQuerySet:
        """Classified uploads outside their version's unsure band: the verdict is phone or not a phone."""
        # The ignore: "verdict" is with_verdict()'s annotation, which the django-stubs plugin cannot follow out of a
        # custom QuerySet method.
        return self.with_verdict().filter(verdict__in=Label.values)  # type: ignore[misc]

    def place_unsure(self) -> UploadQuerySet:
        """Confident "phone" verdicts whose best box is only a guess (drawn dashed): where a reviewer's box helps
        retraining most (:func:`phoneapp.selectors.decisions.upload_place_unsure`, in SQL)."""
        from phoneapp.selectors.decisions import unsure_place_q

        return self.with_verdict().filter(unsure_place_q())


class Upload(models.Model):
    """A picture someone sent, and what the model and a reviewer said about it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    # width and height are set from the decoded, EXIF-rotated picture, not re-read from the file by Django.
    image = models.ImageField(upload_to=upload_image_path)
    thumbnail = models.ImageField(upload_to=thumbnail_path, blank=True)
    # "Where is the phone": an overlay of the evidence for the verdict, written by the worker.
    heatmap = models.ImageField(upload_to=heatmap_path, blank=True)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    content_type = models.CharField(max_length=50)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    status = models.CharField(max_length=12, choices=UploadStatus.choices, default=UploadStatus.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    processing_started = models.DateTimeField(null=True, blank=True)
    # When its task was last handed to the broker; the sweep re-sends only uploads never or long ago sent.
    queued_at = models.DateTimeField(null=True, blank=True)

    predicted_label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    probability = models.FloatField(null=True, blank=True, help_text="Probability that the picture shows a phone")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="uploads"
    )
    # Where the model found phones: [{"box": [x1, y1, x2, y2], "score": s}, ...], normalised to the picture as
    # shown (after EXIF rotation), best first; empty when the model found none or cannot localise.
    predicted_boxes = models.JSONField(default=list, blank=True)
    # The verdict pass's own evidence map (one byte per cell, see phoneapp/services/heatmaps.py: evidence_pack),
    # written with the verdict; the heat map is drawn from it when first asked for. Null for models whose verdict
    # pass gives none (zero-shot: Grad-CAM, a task after the verdict).
    evidence = models.BinaryField(null=True, blank=True, editable=False)
    processed = models.DateTimeField(null=True, blank=True)
    inference_ms = models.FloatField(null=True, blank=True)

    reviewed_label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviews"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # Where the reviewer says the phones are ([{"box": [x1, y1, x2, y2]}, ...], normalised like predicted_boxes); null
    # when the reviewer did not draw or correct boxes (a phone is then trained through its best cell).
    reviewed_boxes = models.JSONField(null=True, blank=True)
    # Set once, at the first review, from a stable hash of the picture (sha256): duplicates land together, and
    # eval pictures never train (review_split_of in phoneapp/services/reviews.py).
    review_split = models.CharField(max_length=5, choices=ReviewSplit.choices, blank=True)
    second_review = models.CharField(max_length=10, choices=SecondReview.choices, blank=True)
    second_label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    second_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="second_reviews"
    )
    # Who has this picture open in the review queue, and until when: the queue hands other reviewers other pictures
    # meanwhile (phoneapp/services/review_claims.py). A claim past its time means nothing.
    review_claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    review_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Staff-confirmed labels every version is scored on; never trained on (Label Studio's ground truth).
    ground_truth_label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    ground_truth_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="ground_truths"
    )
    ground_truth_at = models.DateTimeField(null=True, blank=True)

    objects = UploadQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created"]),
            models.Index(fields=["status", "created"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(probability__isnull=True) | Q(probability__gte=0, probability__lte=1),
                name="probability_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=~Q(status=UploadStatus.DONE) | (Q(probability__isnull=False) & ~Q(predicted_label="")),
                name="done_upload_has_verdict",
            ),
            models.CheckConstraint(
                condition=Q(reviewed_label="") | Q(reviewed_at__isnull=False),
                name="review_has_timestamp",
            ),
        ]

    def __str__(self) -> str:
        # No file name: the admin's action log keeps this text for good, after the upload and its owner are deleted
        # (a file name like "bob-holiday.jpg" is the owner's data).
        return f"Upload {self.pk}"


class VersionScore(models.Model):
    """How one model version scored on one trusted picture set (ground truth or the eval split), per slice.

    ``pictures_digest`` (sha256 over the sorted picture hashes) tells whether two versions were scored on the same
    pictures, so the dashboard compares like with like.
    """

    class Set(models.TextChoices):
        GROUND_TRUTH = "ground_truth", "Ground truth"
        EVAL = "eval", "Eval split"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores")
    picture_set = models.CharField(max_length=12, choices=Set.choices)
    slice = models.CharField(max_length=60, default="all")
    count = models.PositiveIntegerField()
    correct = models.PositiveIntegerField()
    accuracy = models.FloatField()
    false_positives = models.PositiveIntegerField(default=0)
    false_negatives = models.PositiveIntegerField(default=0)
    pictures_digest = models.CharField(max_length=64)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "picture_set", "slice"]
        indexes = [models.Index(fields=["version", "picture_set", "slice", "-created"])]

    def __str__(self) -> str:
        return f"{self.version} on {self.picture_set}/{self.slice}: {self.correct}/{self.count}"


class ApiToken(models.Model):
    """A user's API key, stored as its SHA-256 digest: a database leak or an admin page never reveals a usable key.

    The key itself is shown once, when it is made (phoneapp/services/api_tokens.py); ``prefix`` (its first
    characters) lets people recognise it afterwards. One per user: making a new one replaces the old. A plain
    SHA-256 (no salt, no slow hash) is enough because keys are 160 random bits, not guessable passwords, and it
    lets every API request find its token with one indexed lookup."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    prefix = models.CharField(max_length=8, help_text="the key's first characters, to recognise it")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key, hex")
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.text_of(prefix=self.prefix, user_id=self.user_id)

    @staticmethod
    def text_of(*, prefix: str, user_id: int) -> str:
        """A token's text, by its user's id, not username: the admin's action log keeps it for good, after the
        token and its user are deleted (phoneapp/services/admin_log.py)."""
        return f"{prefix}… (user {user_id})"


class UploadRequest(models.Model):
    """An API upload request sent with an ``Idempotency-Key`` header, and the uploads it made.

    A client that lost the answer to its request (a timeout, a dropped connection) cannot tell whether the pictures
    were stored; sending them again with the same key gets the uploads the first request made instead of copies
    (phoneapp/services/upload_requests.py). Kept for a day; one key per owner at a time."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 over the pictures' sha256 digests in the order sent: the same key with other pictures is refused.
    fingerprint = models.CharField(max_length=64)
    # The uploads made, in the order sent (a list, not a relation: the order is part of the answer).
    upload_ids = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="one_upload_request_per_key")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key!r} ({len(self.upload_ids)} uploads)"

    @staticmethod
    def fingerprint_of(digests: Iterable[str]) -> str:
        """The fingerprint of pictures whose sha256 digests (of the bytes sent) are ``digests``, in the order sent."""
        return hashlib.sha256("\n".join(digests).encode()).hexdigest()
