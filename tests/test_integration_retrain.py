"""A running worker picks up a newly trained and activated model version without a restart."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from phoneapp.models import Upload, UploadStatus
from tests import live_services
from tests.images import uploaded_file
from tests.synthetic import write_synthetic_folder
from tests.test_integration_worker import VERDICT_TIMEOUT, broker_url, celery_worker  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def verdict_of(client: Client, worker: live_services.CeleryWorker, name: str) -> Upload:
    upload_id = client.post("/api/uploads/", {"image": uploaded_file(name)}).json()[0]["id"]

    def finished() -> Upload | None:
        upload = Upload.objects.select_related("model_version").get(pk=upload_id)
        return upload if upload.status in (UploadStatus.DONE, UploadStatus.FAILED) else None

    try:
        upload = live_services.wait_until(finished, timeout=VERDICT_TIMEOUT, what=f"verdict of {name}")
    except TimeoutError as error:
        pytest.fail(f"{error}\nworker log:\n{worker.log_tail()}")
    assert upload.status == UploadStatus.DONE, upload.error
    return upload


def test_running_worker_uses_the_retrained_version_for_the_next_upload(
    celery_worker: live_services.CeleryWorker,  # noqa: F811 - the imported fixture
    alice_client: Client,
    tmp_path: Path,
) -> None:
    before = verdict_of(alice_client, celery_worker, "before.jpg")
    assert before.model_version is not None and before.model_version.name == "imagenet-zero-shot"

    data = write_synthetic_folder(tmp_path / "data", per_label=12)
    out = io.StringIO()
    quick = ["--set", "image_size=96", "--set", "augmented_views=1", "--set", "pasted_views=0"]
    call_command(
        "retrain",
        *quick,
        "--set",
        "folds=2",
        "--epochs",
        "2",
        "--data-dir",
        str(data),
        "--activate",
        "--json",
        stdout=out,
        stderr=io.StringIO(),
    )
    new_version = json.loads(out.getvalue())["version"]

    after = verdict_of(alice_client, celery_worker, "after.jpg")
    assert after.model_version is not None and after.model_version.name == new_version
