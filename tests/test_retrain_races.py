"""A retrain reads pictures for minutes while their owners go on deleting them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files import File

from phoneapp.models import ReviewSplit, Upload
from phoneapp.services import training_data
from phoneapp.services.evaluation import pictures_decode
from phoneapp.services.training_data import training_samples_collect
from tests.factories import make_upload

pytestmark = pytest.mark.django_db


def test_a_picture_deleted_while_a_retrain_copies_them_from_storage_is_skipped_not_fatal(
    alice: User, reviewer: User, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a storage that has no local paths (S3), the retrain copies each listed picture into its scratch folder.
    One whose owner deleted it after the listing (file and row gone) stopped the whole retrain with the storage's
    FileNotFoundError; it is skipped as unreadable, as it is with files on local disk."""
    kept, deleted = (make_upload(alice, reviewed="phone", reviewer=reviewer) for _ in range(2))
    Upload.objects.update(review_split=ReviewSplit.TRAIN)
    storage = Upload.image.field.storage
    local_path = storage.path

    def no_local_paths(name: str) -> str:
        raise NotImplementedError("This backend doesn't support absolute paths.")

    monkeypatch.setattr(storage, "path", no_local_paths)
    monkeypatch.setattr(storage, "_open", lambda name, mode="rb": File(open(local_path(name), mode)))  # noqa: SIM115
    listed = training_data.training_uploads

    def listed_then_one_deleted_by_its_owner() -> list[Upload]:
        uploads = listed()
        Upload.objects.filter(pk=deleted.pk).delete()
        os.remove(local_path(deleted.image.name))
        return uploads

    monkeypatch.setattr(training_data, "training_uploads", listed_then_one_deleted_by_its_owner)

    samples = training_samples_collect(data_dirs=[], workdir=tmp_path)
    readable, unreadable = pictures_decode(samples)

    assert [sample.recorded_as for sample in readable] == [f"upload:{kept.pk}"]
    assert len(unreadable) == 1
