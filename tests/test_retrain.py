"""``manage.py retrain`` and ``manage.py evaluate``: reviewed labels in, a measured model version out."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from phoneapp.models import ModelVersion, Upload, UploadStatus
from phoneapp.services.classification import upload_classify
from phoneapp.services.model_versions import model_version_active
from tests.images import encode
from tests.synthetic import synthetic_picture, write_synthetic_folder

pytestmark = pytest.mark.django_db

# Small and quick: 64 px inputs, one augmented view, no composites, three folds.
QUICK = ["--set", "image_size=64", "--set", "views_per_image=1", "--set", "composites_per_fold=0", "--set", "folds=3"]


def run_retrain(*args: str) -> dict:
    out = io.StringIO()
    call_command("retrain", *QUICK, "--json", *args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def reviewed_upload(owner: User, label: str, rng: random.Random, *, reviewer: User | None = None) -> Upload:
    from django.core.files.base import ContentFile

    data = encode(synthetic_picture(label, rng), "PNG")
    upload = Upload(
        owner=owner,
        original_name=f"{label}.png",
        sha256=str(rng.random()),
        size_bytes=len(data),
        width=160,
        height=120,
        content_type="image/png",
        reviewed_label=label,
        reviewed_by=reviewer,
        reviewed_at=timezone.now(),
    )
    upload.image.save("x.png", ContentFile(data), save=False)
    upload.save()
    return upload


@pytest.mark.usefixtures("deployed_models")
def test_retrain_from_reviewed_uploads_registers_a_better_version_and_next_prediction_uses_it(
    alice: User, reviewer: User
) -> None:
    rng = random.Random(1)
    for index in range(40):
        reviewed_upload(alice, "phone" if index % 2 else "not_phone", rng, reviewer=reviewer)
    # A prediction nobody reviewed must never become a training label.
    unreviewed = reviewed_upload(alice, "phone", rng)
    Upload.objects.filter(pk=unreviewed.pk).update(reviewed_label="", reviewed_at=None, predicted_label="phone")

    report = run_retrain("--epochs", "4")

    assert report["data_summary"]["per_label"] == {"not_phone": 20, "phone": 20}
    assert report["data_summary"]["per_source"] == {"reviewed-upload": {"not_phone": 20, "phone": 20}}
    assert report["registered"] is True
    assert report["promoted"] is True, report["decision"]
    assert report["candidate"]["accuracy"] >= 0.9
    assert report["active"]["model_version"] == "imagenet-zero-shot"
    version = ModelVersion.objects.get(name=report["version"])
    assert version.is_active
    assert version.metrics["accuracy"] == report["candidate"]["accuracy"]
    assert version.data_summary["pictures"] == 40
    assert len(version.checksum) == 64

    new_upload = reviewed_upload(alice, "phone", rng)
    Upload.objects.filter(pk=new_upload.pk).update(reviewed_label="", reviewed_at=None, status=UploadStatus.PENDING)
    classified = upload_classify(upload_id=new_upload.pk)
    assert classified is not None
    assert classified.model_version == version
    assert classified.predicted_label == "phone"


def test_candidate_that_is_worse_is_not_promoted_unless_forced(tmp_path: Path) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=20)
    good = run_retrain("--data-dir", str(data), "--epochs", "4")
    assert good["promoted"] is True
    # Learning rates of zero leave the new head untrained: the candidate can only be worse.
    untrained = ["--set", "head_lr=0", "--set", "tail_lr=0", "--epochs", "1", "--data-dir", str(data)]

    refused = run_retrain(*untrained)

    assert refused["promoted"] is False
    assert "not promoted" in refused["decision"]
    assert refused["registered"] is True
    assert model_version_active().name == good["version"]
    assert ModelVersion.objects.get(name=refused["version"]).is_active is False

    forced = run_retrain(*untrained, "--activate")
    assert forced["promoted"] is True
    assert model_version_active().name == forced["version"]


def test_dry_run_trains_and_reports_but_registers_nothing(tmp_path: Path, settings: object) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=12)
    before = set(ModelVersion.objects.values_list("name", flat=True))
    report = run_retrain("--data-dir", str(data), "--epochs", "1", "--dry-run")
    assert report["registered"] is False
    assert report["promoted"] is False
    assert "accuracy" in report["candidate"]
    assert set(ModelVersion.objects.values_list("name", flat=True)) == before
    models_dir = Path(settings.MODELS_DIR)  # type: ignore[attr-defined]
    assert not (models_dir / report["version"]).exists()
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".incoming")]


def test_no_reviewed_uploads_and_no_data_dir_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="No training data"):
        call_command("retrain", *QUICK, stdout=io.StringIO())
    assert not ModelVersion.objects.filter(name__startswith="retrain-").exists()


def test_only_one_label_is_a_clear_error(tmp_path: Path) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    for picture in (data / "not_phone").iterdir():
        picture.unlink()
    with pytest.raises(CommandError, match="both labels"):
        call_command("retrain", *QUICK, "--data-dir", str(data), stdout=io.StringIO())
    assert not ModelVersion.objects.filter(name__startswith="retrain-").exists()


def test_unreadable_pictures_are_skipped_and_counted_and_too_few_fails(tmp_path: Path) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=7)
    (data / "phone" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    for index in range(2):
        (data / "not_phone" / f"not_phone-{index}.png").write_bytes(b"garbage")
    with pytest.raises(CommandError, match=r"Too few readable pictures.*3 unreadable skipped"):
        call_command("retrain", *QUICK, "--data-dir", str(data), stdout=io.StringIO())
    assert not ModelVersion.objects.filter(name__startswith="retrain-").exists()


def test_unknown_training_setting_is_refused() -> None:
    with pytest.raises(CommandError, match="Unknown training setting"):
        call_command("retrain", "--set", "learning_speed=11", stdout=io.StringIO())


@pytest.mark.usefixtures("deployed_models")
def test_evaluate_command_reports_metrics_of_a_version_on_a_folder(tmp_path: Path) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=5)
    out = io.StringIO()
    call_command("evaluate", "--version", "imagenet-zero-shot", "--data-dir", str(data), "--json", stdout=out)
    metrics = json.loads(out.getvalue())
    assert metrics["model_version"] == "imagenet-zero-shot"
    assert metrics["count"] == 10
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "ece", "confusion"} <= set(metrics)


def test_evaluate_command_on_reviewed_uploads(alice: User) -> None:
    rng = random.Random(3)
    for label in ("phone", "not_phone", "phone"):
        reviewed_upload(alice, label, rng)
    out = io.StringIO()
    call_command("evaluate", stdout=out)
    assert "count        3" in out.getvalue()


def test_evaluate_unknown_version_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="No model version 'nope'"):
        call_command("evaluate", "--version", "nope", stdout=io.StringIO())


def test_retraining_runs_on_its_own_queue_so_verdicts_never_wait_behind_it() -> None:
    from phoneapp.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task, args=(), kwargs={})["queue"].name

    assert queue_of("phoneapp.tasks.retrain_task") == "training"
    assert queue_of("phoneapp.tasks.upload_classify_task") == "classify"
