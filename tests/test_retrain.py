"""``manage.py retrain`` and ``manage.py evaluate``: settled reviewed labels in, a scene-model version out, promoted
only on trusted evidence (ground truth and the eval split, never trained on).

Pictures are drawn here (close-up phone-like slabs and green-noise non-phones, 96 px): the zero-shot test default
calls them all "not a phone", the shipped model gets them nearly all right, and a tiny scene model learns them
in seconds -- enough to tell a candidate that learnt the truth from one that learnt flipped labels.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from PIL import Image

from inference import load as load_model
from inference.drawing import draw_not_phone, draw_phone_like
from inference.images import open_image
from ml_training.metrics import paired_test, roc_auc
from phoneapp.models import ModelVersion, ReviewSplit, Upload, VersionScore
from phoneapp.services.ground_truth import uploads_mark_ground_truth
from phoneapp.services.model_versions import model_version_activate, model_version_active
from phoneapp.services.promotion import MIN_GROUND_TRUTH_PER_LABEL, decide_promotion, dry_run_decision
from tests.factories import make_review, make_upload
from tests.images import encode
from tests.synthetic import write_synthetic_folder

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


# A deployed database: sync_models registered the shipped versions, the tests' default active.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("deployed_models")]

# Small and quick: 96 px inputs, one augmented view, no pasted phones, two folds, few epochs.
QUICK_RECIPE = ["--set", "image_size=96", "--set", "augmented_views=1", "--set", "pasted_views=0", "--set", "folds=2"]
QUICK_RECIPE += ["--epochs", "12"]
# And one head (the recipe's default is three): retraining's head count has a test of its own.
QUICK = [*QUICK_RECIPE, "--set", "heads=1"]


def run_retrain(*args: str, quick: Sequence[str] = QUICK) -> dict:
    out = io.StringIO()
    call_command("retrain", *quick, "--json", *args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def drawn_upload(owner: User, label: str, rng: random.Random) -> Upload:
    """A classified upload of a freshly drawn picture whose truth is ``label`` (nobody has reviewed it yet).

    Its ``sha256`` is the stored bytes' own, as the upload service records it: the review split is a hash of it,
    so a seeded ``rng`` gives the same train/eval split on every run (a random one left 5 of 12 non-phones in
    training one run in a few hundred, and a retrain refused them as too few).
    """
    picture = (draw_phone_like if label == "phone" else draw_not_phone)(rng, 96)
    data = encode(picture, "PNG")
    return make_upload(
        owner,
        name=f"{label}.png",
        picture=picture,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="image/png",
        probability=0.1,
        version=None,
    )


def reviewed_uploads(owner: User, reviewer: User, count: int, rng: random.Random, *, flip: bool = False) -> list:
    """``count`` uploads, half phones, reviewed through the review service (which assigns the split); with
    ``flip`` every label the reviewer gives is the wrong one."""
    made = []
    for index in range(count):
        truth = "phone" if index % 2 else "not_phone"
        upload = drawn_upload(owner, truth, rng)
        given = {"phone": "not_phone", "not_phone": "phone"}[truth] if flip else truth
        made.append(make_review(upload, label=given, reviewer=reviewer))
    return made


def ground_truth(owner: User, reviewer: User, per_label: int, rng: random.Random) -> list[Upload]:
    made = []
    for label in ("phone", "not_phone"):
        for _ in range(per_label):
            upload = drawn_upload(owner, label, rng)
            uploads_mark_ground_truth(uploads=Upload.objects.filter(pk=upload.pk), by=reviewer, label=label)
            made.append(upload)
    return made


def test_wrong_labels_are_not_promoted_over_the_shipped_model(alice: User, reviewer: User) -> None:
    shipped = ModelVersion.objects.get(name="finetuned-lite2-v2")
    model_version_activate(version=shipped)
    rng = random.Random(11)
    ground_truth(alice, reviewer, 15, rng)
    reviewed_uploads(alice, reviewer, 40, rng, flip=True)

    report = run_retrain()

    assert report["data_summary"]["ground_truth"]["pictures"] == 30
    assert report["registered"] is True
    assert report["promoted"] is False, report["decision"]
    assert "on ground_truth it is significantly worse (p = " in report["decision"]
    assert report["paired_tests"]["ground_truth"]["candidate_worse"] is True
    assert model_version_active() == shipped
    candidate = ModelVersion.objects.get(name=report["version"])
    assert candidate.is_active is False
    assert candidate.metrics["decision"] == report["decision"]


def test_correct_labels_on_a_slice_the_active_model_misses_are_promoted_by_the_paired_test(
    alice: User, reviewer: User
) -> None:
    rng = random.Random(12)
    ground_truth(alice, reviewer, MIN_GROUND_TRUTH_PER_LABEL, rng)
    reviewed_uploads(alice, reviewer, 36, rng)

    report = run_retrain()

    gt = report["paired_tests"]["ground_truth"]
    assert report["active"]["model_version"] == "imagenet-zero-shot"
    assert gt["candidate_only_right"] > gt["active_only_right"], gt
    assert report["promoted"] is True, report["decision"]
    assert model_version_active().name == report["version"]
    assert report["candidate"]["ground_truth"]["all"]["accuracy"] >= 0.8
    assert report["warm_start"] is None  # the zero-shot model is not a scene model: the head started fresh


def test_a_candidate_as_good_on_ground_truth_but_significantly_worse_on_eval_is_not_promoted(
    alice: User, reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only ground truth was compared: a candidate that lost every eval picture the active model got right went live."""
    from phoneapp.services import retraining

    rng = random.Random(12)
    ground_truth(alice, reviewer, MIN_GROUND_TRUTH_PER_LABEL, rng)
    reviewed_uploads(alice, reviewer, 36, rng)

    def all_right(model_dir: Path, truth: list, evaluation: list, *_: Any) -> dict[str, list[bool]]:
        return {"ground_truth": [True] * len(truth), "eval": [True] * len(evaluation)}

    def wrong_on_eval(model_dir: Path, truth: list, evaluation: list, *_: Any) -> dict[str, list[bool]]:
        return {"ground_truth": [True] * len(truth), "eval": [False] * len(evaluation)}

    monkeypatch.setattr(retraining, "active_version_score", all_right)
    monkeypatch.setattr(retraining, "model_dir_score", wrong_on_eval)

    report = run_retrain()

    assert report["data_summary"]["eval"]["pictures"] >= 5, "too few eval pictures for a significant test"
    assert report["promoted"] is False, report["decision"]
    assert set(report["paired_tests"]) == {"ground_truth", "eval"}
    assert report["paired_tests"]["ground_truth"]["candidate_worse"] is False
    assert report["paired_tests"]["eval"]["candidate_worse"] is True
    assert "on eval it is significantly worse" in report["decision"]
    assert model_version_active().name == "imagenet-zero-shot"


def test_a_candidate_compared_with_a_version_no_longer_active_is_not_promoted(
    alice: User, reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone rolls back (or another retrain finishes) while a retrain trains: its comparison was with the version
    active when it started, so it is registered inactive and says why; the person's choice stays active."""
    from ml_training.scene import train as scene_train

    rng = random.Random(12)
    ground_truth(alice, reviewer, MIN_GROUND_TRUTH_PER_LABEL, rng)
    reviewed_uploads(alice, reviewer, 36, rng)
    rolled_back_to = ModelVersion.objects.get(name="finetuned-lite0-v1")
    train_scene_model = scene_train.train_scene_model

    def train_while_someone_activates(*args: Any, **kwargs: Any) -> Any:
        model_version_activate(version=rolled_back_to)
        return train_scene_model(*args, **kwargs)

    monkeypatch.setattr(scene_train, "train_scene_model", train_while_someone_activates)

    report = run_retrain()

    assert report["promoted"] is False
    assert "the active model version changed while this retrain ran" in report["decision"]
    assert model_version_active() == rolled_back_to
    assert not ModelVersion.objects.get(name=report["version"]).is_active


def test_two_retrains_are_scored_on_the_same_trusted_pictures_which_never_train(
    alice: User, reviewer: User, settings: SettingsFixture
) -> None:
    rng = random.Random(13)
    truth = ground_truth(alice, reviewer, 2, rng)  # too few to judge: nothing may be promoted automatically
    reviewed = reviewed_uploads(alice, reviewer, 36, rng)
    reviewed = [Upload.objects.get(pk=u.pk) for u in reviewed]
    boxed = [u for u in reviewed if u.reviewed_label == "phone" and u.review_split == ReviewSplit.TRAIN][:3]
    Upload.objects.filter(pk__in=[u.pk for u in boxed]).update(reviewed_boxes=[{"box": [0.2, 0.1, 0.6, 0.8]}])
    eval_pictures = [u for u in reviewed if u.review_split == ReviewSplit.EVAL]
    assert eval_pictures, "the stable hash put no picture in the eval split; draw a few more"

    first = run_retrain()
    second = run_retrain("--seed", "1")

    for report in (first, second):
        assert report["promoted"] is False
        assert "too little ground truth" in report["decision"]
        assert report["data_summary"]["boxed_pictures"] == 3
        assert report["data_summary"]["eval"]["pictures"] == len(eval_pictures)
        assert not ModelVersion.objects.get(name=report["version"]).is_active
    assert model_version_active().name == "imagenet-zero-shot"

    def digests(version: str) -> dict[tuple[str, str], str]:
        scores = VersionScore.objects.filter(version__name=version, slice="all")
        return {(score.picture_set, score.slice): score.pictures_digest for score in scores}

    assert set(digests(first["version"])) == {("ground_truth", "all"), ("eval", "all")}
    assert digests(first["version"]) == digests(second["version"])
    staff = Client()
    staff.force_login(reviewer)
    history = staff.get("/dashboard/").content.decode().split('id="version-history"')[1].split("</table>")[0]
    assert first["version"] in history and second["version"] in history
    assert "imagenet-zero-shot <strong>(active)</strong>" in history
    assert history.count("set A") == 3 and history.count("set B") == 3  # three versions, the same two sets
    versions_admin = staff.get("/admin/phoneapp/modelversion/").content.decode()
    assert re.search(r"<td class=\"field-ground_truth_score\">\d/4 \(\d+\.\d%\)</td>", versions_admin)

    # The version's records name each upload by id, never by its file (they outlive the upload's deletion).
    trusted = {f"upload:{u.pk}" for u in [*truth, *eval_pictures]}
    models_dir = Path(settings.MODELS_DIR)
    for report in (first, second):
        split = json.loads((models_dir / report["version"] / "split.json").read_text())
        trained = set(split["folds"])
        assert len(trained) == report["data_summary"]["pictures"]
        assert trained <= {f"upload:{u.pk}" for u in reviewed}, trained
        assert not trained & trusted
        predictions = (models_dir / report["version"] / "predictions.json").read_text()
        assert "upload:" in predictions and settings.MEDIA_ROOT not in predictions


def test_activate_is_a_persons_decision_even_without_ground_truth(tmp_path: Path) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    report = run_retrain("--data-dir", str(data), "--activate")
    assert report["promoted"] is True
    assert "--activate" in report["decision"]
    assert model_version_active().name == report["version"]


@pytest.mark.writes_model_files  # rewrites a weights or manifest file in place
def test_an_active_model_that_cannot_be_loaded_to_compare_with_is_not_replaced_automatically(
    alice: User, reviewer: User, settings: SettingsFixture
) -> None:
    """Nothing shows the candidate is not worse than a model that could not be scored: it was promoted "with no
    usable active model" (a missing member file, a manifest a deploy broke)."""
    rng = random.Random(12)
    ground_truth(alice, reviewer, MIN_GROUND_TRUTH_PER_LABEL, rng)
    reviewed_uploads(alice, reviewer, 36, rng)
    active = model_version_active()
    (Path(settings.MODELS_DIR) / active.name / "manifest.json").write_text('{"kind": "not-a-model-kind"}')

    report = run_retrain()

    assert report["promoted"] is False
    assert f"the active model {active.name} could not be loaded to compare with" in report["decision"]
    assert model_version_active() == active
    assert ModelVersion.objects.get(name=report["version"]).is_active is False


def test_the_rule_refuses_a_candidate_right_on_fewer_pictures_or_significantly_worse() -> None:
    enough = {"phone": 10, "not_phone": 10}
    # 8 pictures only the active model gets right, none only the candidate: p = 1/256, refused.
    clearly_worse = paired_test(baseline=[True] * 20, candidate=[False] * 8 + [True] * 12)
    assert clearly_worse.candidate_worse
    promoted, why = decide_promotion(
        ground_truth_per_label=enough, tests={"ground_truth": clearly_worse}, has_active=True, force=False
    )
    assert not promoted and "on ground_truth it is significantly worse" in why
    # 8 pictures only the active model gets right, 2 only the candidate: p = 0.055, not significant, but right on
    # fewer pictures is worse as measured: refused.
    fewer = paired_test(baseline=[True] * 8 + [False] * 2 + [True] * 10, candidate=[False] * 8 + [True] * 12)
    assert not fewer.candidate_worse
    promoted, why = decide_promotion(
        ground_truth_per_label=enough, tests={"ground_truth": fewer}, has_active=True, force=False
    )
    # Said as what it is: not "worse" next to a p value that is not significant.
    assert not promoted and why.startswith(
        "not promoted: on ground_truth it is right on fewer pictures (2 only it gets right, 8 only the active model"
    )
    # One picture worse, two better: not significantly worse, promoted.
    close = paired_test(baseline=[True, False, False] + [True] * 17, candidate=[False, True, True] + [True] * 17)
    assert not close.candidate_worse
    assert decide_promotion(ground_truth_per_label=enough, tests={"ground_truth": close}, has_active=True, force=False)[
        0
    ]
    # Not enough ground truth: never automatic, whatever the scores.
    promoted, why = decide_promotion(
        ground_truth_per_label={"phone": 30, "not_phone": 3}, tests={}, has_active=True, force=False
    )
    assert not promoted and "7 more not_phone" in why


def test_one_ground_truth_picture_short_of_the_minimum_is_refused_naming_it_and_the_minimum_itself_is_enough() -> None:
    """Only a label with two or more pictures missing was refused: 9 phones passed as 10 would."""
    equal = paired_test(baseline=[True] * 19, candidate=[True] * 19)
    promoted, why = decide_promotion(
        ground_truth_per_label={"phone": 9, "not_phone": 10},
        tests={"ground_truth": equal},
        has_active=True,
        force=False,
    )
    assert not promoted
    assert why.startswith("not promoted: too little ground truth to judge (it has 10 not_phone, 9 phone; ")
    assert "; 1 more phone needed, at least 10 of each label)" in why

    equal = paired_test(baseline=[True] * 20, candidate=[True] * 20)
    promoted, why = decide_promotion(
        ground_truth_per_label={"phone": 10, "not_phone": 10},
        tests={"ground_truth": equal},
        has_active=True,
        force=False,
    )
    assert promoted, why


def test_a_candidate_worse_on_too_little_ground_truth_is_called_worse_before_manual_activation_is_suggested() -> None:
    """Right on 7 of 10 ground-truth pictures against the active model's 10 (3 of 4 eval against 4), the decision
    said only "too little ground truth ... or activate it yourself", which read as nothing known against it."""
    ground_truth = paired_test(baseline=[True] * 10, candidate=[False] * 3 + [True] * 7)
    evaluation = paired_test(baseline=[True] * 4, candidate=[False] + [True] * 3)

    promoted, why = decide_promotion(
        ground_truth_per_label={"phone": 5, "not_phone": 5},
        tests={"ground_truth": ground_truth, "eval": evaluation},
        has_active=True,
        force=False,
    )

    assert not promoted
    worse = (
        "On the pictures it was scored on it is worse than the active model: right on 3 fewer of the 10 ground_truth "
        "pictures and 1 fewer of the 4 eval pictures."
    )
    assert worse in why and why.index(worse) < why.index("activate it yourself only on purpose")
    assert "or activate it yourself" not in why
    # A dry run says it too: it is part of what the rule found, not of the registering.
    assert worse in dry_run_decision(why)


def test_dry_run_trains_and_reports_but_registers_nothing(tmp_path: Path, settings: SettingsFixture) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    before = set(ModelVersion.objects.values_list("name", flat=True))
    report = run_retrain("--data-dir", str(data), "--dry-run")
    assert report["decision"].startswith("dry run, nothing registered; the rule says: ")
    assert "Registered inactive" not in report["decision"]
    assert report["registered"] is False
    assert report["promoted"] is False
    assert "ground_truth" in report["candidate"]
    assert set(ModelVersion.objects.values_list("name", flat=True)) == before
    assert not VersionScore.objects.exists()
    models_dir = Path(settings.MODELS_DIR)
    assert not (models_dir / report["version"]).exists()
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".incoming")]


def test_folder_pictures_that_are_also_ground_truth_never_train_the_candidate(
    tmp_path: Path, alice: User, reviewer: User, settings: SettingsFixture
) -> None:
    """Ground truth seeded by uploading pictures of the training folder: those files are left out of training
    (matched by content), so the candidate is never scored on pictures it learnt."""
    data = write_synthetic_folder(tmp_path / "data", per_label=16)
    scored = []
    for label in ("phone", "not_phone"):
        for path in sorted((data / label).glob("*.png"))[:MIN_GROUND_TRUTH_PER_LABEL]:
            content = path.read_bytes()
            upload = make_upload(
                alice,
                name=path.name,
                data=content,
                sha256=hashlib.sha256(content).hexdigest(),
                content_type="image/png",
            )
            uploads_mark_ground_truth(uploads=Upload.objects.filter(pk=upload.pk), by=reviewer, label=label)
            scored.append(path.resolve())

    report = run_retrain("--data-dir", str(data))

    assert report["data_summary"]["folder_pictures_also_scored_left_out"] == 2 * MIN_GROUND_TRUTH_PER_LABEL
    split = json.loads((Path(settings.MODELS_DIR) / report["version"] / "split.json").read_text())
    trained = {Path(path).resolve() for path in split["folds"]}
    assert len(trained) == 32 - 2 * MIN_GROUND_TRUTH_PER_LABEL
    assert not trained & set(scored)


def test_a_resized_re_encoded_copy_of_an_eval_picture_never_trains_the_candidate_scored_on_it(
    alice: User, reviewer: User, settings: SettingsFixture
) -> None:
    """The review split is a hash of the bytes, so the same picture sent again at another size or JPEG quality
    can land in ``train`` while the original is an eval picture; the candidate would then be scored on a picture it
    learnt. Such copies are found by perceptual hash and left out."""
    from phoneapp.services.reviews import review_split_of
    from tests.synthetic import draw_textured

    rng = random.Random(21)

    def textured_upload(label: str) -> Upload:
        """Textured, so no two are alike by perceptual hash (the plain drawn phones are within a few bits)."""
        data = encode(draw_textured(label, rng), "PNG")
        return make_upload(
            alice, data=data, sha256=hashlib.sha256(data).hexdigest(), content_type="image/png", version=None
        )

    for index in range(36):
        make_review(
            textured_upload(("not_phone", "phone")[index % 2]),
            label=("not_phone", "phone")[index % 2],
            reviewer=reviewer,
        )
    original = next(
        upload
        for upload in (textured_upload("phone") for _ in range(40))
        if review_split_of(sha256=upload.sha256) == ReviewSplit.EVAL
    )
    with Image.open(original.image.path) as picture:
        smaller = picture.convert("RGB").resize((120, 90))
    copy_bytes = next(
        data
        for data in (encode(smaller, "JPEG", quality=quality) for quality in range(70, 100))
        if review_split_of(sha256=hashlib.sha256(data).hexdigest()) == ReviewSplit.TRAIN
    )
    copy = make_upload(
        alice,
        name="same-phone-again.jpg",
        data=copy_bytes,
        sha256=hashlib.sha256(copy_bytes).hexdigest(),
        probability=0.1,
        version=None,
    )
    make_review(original, label="phone", reviewer=reviewer)
    make_review(copy, label="phone", reviewer=reviewer)
    assert Upload.objects.get(pk=copy.pk).review_split == ReviewSplit.TRAIN

    report = run_retrain()

    assert report["data_summary"]["uploads_like_scored_left_out"] == 1
    split = json.loads((Path(settings.MODELS_DIR) / report["version"] / "split.json").read_text())
    assert not [path for path in split["folds"] if Path(path).name == Path(copy.image.name).name]


def test_a_retrain_started_in_the_same_second_as_another_gets_its_own_version_name(
    tmp_path: Path, settings: SettingsFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One finished this second owns the name (its folder): this one becomes ``-2`` instead of failing at its final
    move after training; the scratch folder a killed run left (``.incoming-*``) is removed."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from phoneapp.services import retrain_folders

    moment = datetime(2026, 12, 6, 3, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(retrain_folders, "timezone", SimpleNamespace(now=lambda: moment))  # this module's clock only
    models_dir = Path(settings.MODELS_DIR)
    (models_dir / "retrain-20261206-030000").mkdir()  # finished this second
    (models_dir / ".incoming-retrain-20261206-025959" / "uploads").mkdir(parents=True)  # a run killed with -9
    data = write_synthetic_folder(tmp_path / "data", per_label=8)

    report = run_retrain("--data-dir", str(data), "--activate")

    assert report["version"] == "retrain-20261206-030000-2"
    assert (models_dir / report["version"] / "manifest.json").is_file()
    assert model_version_active().name == report["version"]
    assert not [path for path in models_dir.iterdir() if path.name.startswith(".incoming-")]


def test_a_retrain_started_while_another_runs_does_nothing(tmp_path: Path, settings: SettingsFixture) -> None:
    """Two runs at once (a cron run while the last still trained) both trained, each twice as slowly, and
    registered two identical candidates."""
    import fcntl
    import os

    from phoneapp.services.retrain_folders import RETRAIN_LOCK_NAME

    models_dir = Path(settings.MODELS_DIR)
    running = os.open(models_dir / RETRAIN_LOCK_NAME, os.O_RDONLY | os.O_CREAT)  # another process's run
    fcntl.flock(running, fcntl.LOCK_EX)
    before = set(ModelVersion.objects.values_list("name", flat=True))
    try:
        with pytest.raises(CommandError, match="Another retrain is running"):
            call_command("retrain", *QUICK, "--data-dir", str(tmp_path), stdout=io.StringIO())
    finally:
        os.close(running)
    assert set(ModelVersion.objects.values_list("name", flat=True)) == before


def test_no_reviewed_uploads_and_no_data_dir_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="No training data"):
        call_command("retrain", *QUICK, stdout=io.StringIO())
    assert not ModelVersion.objects.filter(name__startswith="retrain-").exists()


def test_reviews_waiting_for_a_second_reviewer_and_trusted_pictures_never_train(alice: User, reviewer: User) -> None:
    from phoneapp.models import SecondReview
    from phoneapp.selectors.training import eval_uploads, ground_truth_uploads, training_uploads

    rng = random.Random(14)
    reviewed = reviewed_uploads(alice, reviewer, 20, rng)
    waiting, disagreed = reviewed[0], reviewed[1]
    Upload.objects.filter(pk=waiting.pk).update(second_review=SecondReview.WAITING)
    Upload.objects.filter(pk=disagreed.pk).update(second_review=SecondReview.DISAGREED)
    truth = ground_truth(alice, reviewer, 1, rng)
    # A duplicate of a ground-truth picture, reviewed: it must not train either.
    twin = drawn_upload(alice, "phone", rng)
    Upload.objects.filter(pk=twin.pk).update(sha256=truth[0].sha256, reviewed_label="phone", reviewed_at=timezone.now())

    trained = {u.pk for u in training_uploads()}
    measured = {u.pk for u in eval_uploads()}
    assert waiting.pk not in trained | measured and disagreed.pk not in trained | measured
    assert twin.pk not in trained | measured
    assert not trained & measured
    assert {u.pk for u in ground_truth_uploads()} == {u.pk for u in truth}


def test_only_one_label_is_a_clear_error_with_counts_and_where_pictures_come_from(tmp_path: Path) -> None:
    """It said only "needs pictures of both labels; only phone found", and `--json` printed nothing on stdout."""
    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    for picture in (data / "not_phone").iterdir():
        picture.unlink()
    stdout = io.StringIO()
    with pytest.raises(
        CommandError, match=r"Too few readable pictures to train on: 0 not_phone; at least 6"
    ) as refused:
        call_command("retrain", *QUICK, "--data-dir", str(data), "--json", stdout=stdout)
    assert "ground-truth and eval pictures never train" in str(refused.value)
    assert json.loads(stdout.getvalue()) == {"error": str(refused.value), "promoted": False}
    assert not ModelVersion.objects.filter(name__startswith="retrain-").exists()


def test_unreadable_pictures_are_skipped_and_counted_and_too_few_fails(tmp_path: Path) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=7)
    (data / "phone" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    for index in range(2):
        (data / "not_phone" / f"not_phone-{index}.png").write_bytes(b"garbage")
    with pytest.raises(
        CommandError, match=r"Too few readable pictures to train on: 5 not_phone;.*3 unreadable skipped"
    ):
        call_command("retrain", *QUICK, "--data-dir", str(data), stdout=io.StringIO())
    assert not ModelVersion.objects.filter(name__startswith="retrain-").exists()


def test_unknown_training_setting_is_refused() -> None:
    with pytest.raises(CommandError, match="Unknown training setting"):
        call_command("retrain", "--set", "learning_speed=11", stdout=io.StringIO())


def test_an_unknown_setting_lists_only_the_names_set_takes() -> None:
    # The list named seed, which --set refuses ("Set the seed with --seed"): it named a setting that cannot be set.
    from ml_training.scene.config import flat_names

    with pytest.raises(CommandError, match="Unknown training setting") as refused:
        call_command("retrain", "--set", "learning_speed=11", stdout=io.StringIO())
    listed = str(refused.value).rsplit(": ", 1)[1].rstrip(".").split(", ")  # the list ends the message
    assert "seed" not in listed
    assert set(listed) == set(flat_names()) - {"seed"}
    assert "--seed" in str(refused.value)
    with pytest.raises(CommandError, match="Set the seed with --seed"):
        call_command("retrain", "--set", "seed=3", stdout=io.StringIO())


def test_help_states_the_promotion_rule() -> None:
    from phoneapp.management.commands.retrain import Command

    assert "McNemar" in Command.help and "ground-truth" in Command.help and "--activate" in Command.help


def test_evaluate_command_reports_metrics_of_a_version_on_a_folder(tmp_path: Path) -> None:
    data = write_synthetic_folder(tmp_path / "data", per_label=5)
    out = io.StringIO()
    call_command("evaluate", "--version", "imagenet-zero-shot", "--data-dir", str(data), "--json", stdout=out)
    metrics = json.loads(out.getvalue())
    assert metrics["model_version"] == "imagenet-zero-shot"
    assert metrics["count"] == 10
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "ece", "confusion"} <= set(metrics)


def test_evaluate_command_scores_only_reviewed_uploads_no_version_trained_on(alice: User, reviewer: User) -> None:
    """Ground truth and the eval split count; the train split (a retrained version learnt it) does not."""
    made = reviewed_uploads(alice, reviewer, 12, random.Random(3))
    truth = ground_truth(alice, reviewer, 1, random.Random(4))
    held_out = [u for u in made if Upload.objects.get(pk=u.pk).review_split == ReviewSplit.EVAL]
    assert len(held_out) < len(made)  # some landed in the train split
    out = io.StringIO()
    call_command("evaluate", "--json", stdout=out)
    metrics = json.loads(out.getvalue())
    assert metrics["count"] == len(held_out) + len(truth)
    assert metrics["data"] == "ground truth and eval-split uploads"
    # Also apart, as the retrain reports them (and its rule judges them): pooled, a loss on one set was hidden.
    assert metrics["per_set"]["ground_truth"]["count"] == len(truth)
    assert metrics["per_set"]["eval"]["count"] == len(held_out)
    text = io.StringIO()
    call_command("evaluate", stdout=text)
    assert "ground truth:" in text.getvalue() and "eval split:" in text.getvalue()


def test_evaluate_unknown_version_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="No model version 'nope'"):
        call_command("evaluate", "--version", "nope", stdout=io.StringIO())


def test_commands_without_an_active_model_or_with_bad_arguments_say_so(
    tmp_path: Path, settings: SettingsFixture
) -> None:
    settings.MODELS_DIR = str(tmp_path / "no-models")  # nothing shipped to fall back on
    ModelVersion.objects.update(is_active=False)
    with pytest.raises(CommandError, match="No model version is active"):
        call_command("evaluate", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No model version is active"):
        call_command("draw_heatmaps", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--limit must be 0 or more"):
        call_command("draw_heatmaps", "--limit", "-1", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--seed"):
        call_command("retrain", *QUICK, "--set", "seed=5", stdout=io.StringIO())


def test_a_retrain_keeps_the_active_models_network_shape_and_starts_from_it(tmp_path: Path, settings: object) -> None:
    import torch

    from inference.scene_network import TRUNK_PREFIX, ScenePhoneNet

    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    first = run_retrain(
        "--data-dir",
        str(data),
        "--activate",
        "--set",
        "trainable_blocks=1",
        "--set",
        "heads=1",
        "--set",
        "trunk_learning_rate_scale=0.5",
        "--set",
        "global_context=1",
        "--set",
        "picture_pooling=max",
    )
    # No trainable_blocks, heads, global_context or picture_pooling: the active model's. A vanishing learning rate, so
    # the second ends where it started.
    second = run_retrain("--data-dir", str(data), "--seed", "1", "--set", "learning_rate=1e-9")

    models_dir = Path(settings.MODELS_DIR)  # type: ignore[attr-defined]
    assert second["warm_start"] == first["version"]
    manifests = [json.loads((models_dir / r["version"] / "manifest.json").read_text()) for r in (first, second)]
    assert [manifest["options"]["trainable_blocks"] for manifest in manifests] == [1, 1]
    assert [manifest["options"]["heads"] for manifest in manifests] == [1, 1]
    assert [manifest["options"]["global_context"] for manifest in manifests] == [True, True]
    assert [manifest["options"]["picture_pooling"] for manifest in manifests] == ["max", "max"]
    states = [torch.load(models_dir / r["version"] / "weights.pt", weights_only=True) for r in (first, second)]
    imagenet = ScenePhoneNet(trainable_blocks=1).trained_state_dict()
    tuned = [name for name in imagenet if name.startswith(TRUNK_PREFIX) and name.endswith("conv.weight")]
    assert len(tuned) == 3
    for name in tuned:
        assert not torch.allclose(states[0][name], imagenet[name], atol=1e-4), name  # the first tuned it
        assert torch.allclose(states[1][name], states[0][name], atol=1e-6), name  # the second started from it


def test_a_retrain_of_a_model_with_several_heads_keeps_them_and_starts_each_from_its_own(
    tmp_path: Path, settings: object
) -> None:
    import torch

    from inference.scene_network import split_heads

    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    first = run_retrain("--data-dir", str(data), "--activate", "--set", "heads=2", quick=QUICK_RECIPE)
    # No heads: the active model's two. A vanishing learning rate, so each head ends where it started.
    second = run_retrain("--data-dir", str(data), "--seed", "1", "--set", "learning_rate=1e-9", quick=QUICK_RECIPE)

    models_dir = Path(settings.MODELS_DIR)  # type: ignore[attr-defined]
    assert second["warm_start"] == first["version"]
    manifests = [json.loads((models_dir / r["version"] / "manifest.json").read_text()) for r in (first, second)]
    assert [manifest["options"]["heads"] for manifest in manifests] == [2, 2]
    states = [torch.load(models_dir / r["version"] / "weights.pt", weights_only=True) for r in (first, second)]
    before, after = split_heads(states[0]), split_heads(states[1])
    assert not torch.allclose(before[0]["reduce.weight"], before[1]["reduce.weight"], atol=1e-3)
    for index in (0, 1):
        assert torch.allclose(after[index]["reduce.weight"], before[index]["reduce.weight"], atol=1e-6), index


def test_a_retrain_keeps_the_active_models_second_opinion_and_measures_the_pair(
    tmp_path: Path, settings: object
) -> None:
    from inference.manifest import read_manifest
    from ml_training.second_opinion import compose
    from phoneapp.services.model_versions import model_version_register

    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    first = run_retrain("--data-dir", str(data))
    models_dir = Path(settings.MODELS_DIR)  # type: ignore[attr-defined]
    member = models_dir / "imagenet-zero-shot"
    compose(
        models_dir / first["version"],
        member,
        models_dir / "asks",
        version="asks",
        spec_at_least=0.99,
        spec_consulted_from=0.0,
    )
    model_version_register(model_dir=models_dir / "asks", activate=True)

    second = run_retrain("--data-dir", str(data), "--seed", "1")

    asked = read_manifest(models_dir / "asks").second_opinion
    assert asked is not None and asked.model == member.name
    assert read_manifest(models_dir / second["version"]).second_opinion == asked
    # Its out-of-fold figures are the pair's: the member answered where the candidate said "not a phone".
    threshold = read_manifest(models_dir / second["version"]).threshold
    rows = json.loads((models_dir / second["version"] / "predictions.json").read_text())
    answered = [row for row in rows if "member_probability" in row]
    assert answered and all(row["probability"] < threshold or row["member_probability"] >= 0.99 for row in answered)
    assert second["active"]["model_version"] == "asks"  # scored against the pair it would replace


def test_a_warm_started_retrain_scores_its_folds_with_fresh_heads_not_the_model_that_trained_on_them(
    tmp_path: Path, settings: object
) -> None:
    """The active model trained on these very pictures: folds started from it would score them from memory, and
    the candidate's calibration, threshold and figures would not be out of fold."""
    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    first = run_retrain("--data-dir", str(data), "--activate")
    # A vanishing learning rate: each fold scores its held-out pictures with the head it started from.
    second = run_retrain("--data-dir", str(data), "--seed", "1", "--set", "learning_rate=1e-9")

    assert second["warm_start"] == first["version"]
    models_dir = Path(settings.MODELS_DIR)  # type: ignore[attr-defined]
    first_model = load_model(models_dir / first["version"])
    pictures = sorted((data / "phone").iterdir()) + sorted((data / "not_phone").iterdir())
    in_sample = [first_model.predict([open_image(path)])[0].probability for path in pictures]
    phones = len(list((data / "phone").iterdir()))
    targets = np.array([1] * phones + [0] * (len(pictures) - phones))
    assert (roc_auc(np.array(in_sample), targets) or 0) > 0.95  # the memory a warm fold would have
    manifest = json.loads((models_dir / second["version"] / "manifest.json").read_text())
    assert manifest["metrics"]["cross_validation"]["all"]["roc_auc"] < 0.85


def test_every_data_dir_given_trains_and_a_missing_training_data_dir_stops_the_run(
    tmp_path: Path, settings: SettingsFixture
) -> None:
    """Only the last of several --data-dir was read, silently; a TRAINING_DATA_DIR that is not there (a volume not
    mounted under cron) was skipped without a word, so the run trained on far fewer pictures."""
    first = write_synthetic_folder(tmp_path / "first", per_label=4)
    second = write_synthetic_folder(tmp_path / "second", per_label=4, seed=1)

    report = run_retrain("--data-dir", str(first), "--data-dir", str(second), "--dry-run")

    assert report["data_summary"]["per_label"] == {"phone": 8, "not_phone": 8}, report["data_summary"]
    settings.TRAINING_DATA_DIR = str(tmp_path / "not-mounted")
    with pytest.raises(CommandError, match=r"TRAINING_DATA_DIR .*not-mounted is not a folder"):
        call_command("retrain", *QUICK, "--data-dir", str(first), stdout=io.StringIO())


def test_a_candidate_whose_scores_do_not_separate_the_labels_is_never_promoted_automatically() -> None:
    """Trained on a few dozen reviews, a candidate's out-of-fold scores told nothing apart: Platt scaling then
    flattened them (temperature 983,270), every verdict read 60% and the unsure band closed, and nothing said so.
    Such a calibration is named, the candidate not promoted, and --activate warned."""
    from ml_training.scene.decision import fit_platt, uninformative_calibration

    targets = np.array([1] * 9 + [0] * 6)
    # Scores unrelated to the labels (this seed's draw has no chance correlation with them).
    noise = uninformative_calibration(*fit_platt(np.random.default_rng(3).normal(size=15), targets))
    scores = np.where(targets == 1, 2.0, -2.0) + np.random.default_rng(0).normal(size=15)
    separable = uninformative_calibration(*fit_platt(scores, targets))
    assert noise is not None and "barely separate phones from the rest" in noise
    assert separable is None

    enough = {"phone": 30, "not_phone": 30}
    same = paired_test(baseline=[True] * 20, candidate=[True] * 20)
    promoted, why = decide_promotion(
        ground_truth_per_label=enough, tests={"ground_truth": same}, has_active=True, force=False, uninformative=noise
    )
    assert not promoted and why.startswith("not promoted: its out-of-fold scores barely separate")
    forced, said = decide_promotion(
        ground_truth_per_label=enough, tests={}, has_active=True, force=True, uninformative=noise
    )
    assert forced and "Warning: its out-of-fold scores barely separate" in said


def test_a_retrains_calibration_warning_names_the_folders_it_can_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our first retrain (43 reviewed pictures) calibrated flat and was told only to add reviewed pictures, which
    come slowly; the retrain's own --data-dir and TRAINING_DATA_DIR are what help. ``python -m ml_training train``
    keeps advice in its own words (it has --data-dir, and no reviews)."""
    from ml_training.scene import decision

    monkeypatch.setattr(decision, "UNINFORMATIVE_TEMPERATURE", 0.0)  # any calibration counts as flat here
    data = write_synthetic_folder(tmp_path / "data", per_label=8)

    report = run_retrain("--data-dir", str(data), "--dry-run")

    warning = report["training_metrics"]["calibration_warning"]
    assert "--data-dir" in warning and "TRAINING_DATA_DIR" in warning and "reviewed pictures" in warning
    assert "TRAINING_DATA_DIR" in report["decision"]
    assert "TRAINING_DATA_DIR" not in (decision.uninformative_calibration(10.0, 0.0) or "")


def test_the_text_report_gives_the_paired_tests_in_the_decisions_words(
    alice: User, reviewer: User, tmp_path: Path
) -> None:
    """Without --json our first retrain printed both models' scores but no p value: refused for too little ground
    truth, its decision quoted none, and only the JSON's ``paired_tests`` had them."""
    ground_truth(alice, reviewer, 2, random.Random(5))
    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    out = io.StringIO()

    call_command("retrain", *QUICK, "--data-dir", str(data), "--dry-run", stdout=out, stderr=io.StringIO())

    text = out.getvalue()
    assert "too little ground truth" in text and "p(candidate worse)" not in text.split("not promoted")[-1]
    line = re.search(
        r"ground_truth: candidate alone right on (\d+), active alone on (\d+), p\(candidate worse\) = ", text
    )
    assert line is not None, text


def test_a_candidate_activated_by_hand_keeps_saying_it_was_worse_as_measured() -> None:
    """Our first retrain with --activate recorded "activated because --activate was given" and nothing else: the
    version's admin page and activation page then hid that it was right on 9 fewer of 30 ground-truth pictures."""
    worse = paired_test(baseline=[True] * 30, candidate=[True] * 21 + [False] * 9)

    forced, said = decide_promotion(
        ground_truth_per_label={"phone": 15, "not_phone": 15},
        tests={"ground_truth": worse},
        has_active=True,
        force=True,
    )

    assert forced and said.startswith("activated because --activate was given")
    assert "it is worse than the active model: right on 9 fewer of the 30 ground_truth pictures." in said


def test_a_scene_model_whose_weights_are_gone_is_not_replaced_and_the_retrain_does_not_crash(
    tmp_path: Path, settings: SettingsFixture
) -> None:
    """The warm start read the active scene model's weights unguarded: with weights.pt missing the retrain ended
    in a traceback and registered nothing, while the docs say the candidate is registered inactive with the
    reason."""
    data = write_synthetic_folder(tmp_path / "data", per_label=8)
    active = run_retrain("--data-dir", str(data), "--activate")["version"]
    (Path(settings.MODELS_DIR) / active / "weights.pt").unlink()

    report = run_retrain("--data-dir", str(data))

    assert report["promoted"] is False and f"the active model {active} could not be loaded" in report["decision"]
    assert model_version_active().name == active
    assert ModelVersion.objects.get(name=report["version"]).is_active is False


def test_the_second_opinion_a_retrain_asks_uses_the_serving_cache(
    tmp_path: Path, settings: SettingsFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retrain loaded the active model's second opinion with the default cache, writing its export under
    ~/.cache/phonecheck whatever INFERENCE_CACHE_DIR said."""
    import ml_training.second_opinion
    from phoneapp.services import retrain_warm_start

    settings.INFERENCE_CACHE_DIR = str(tmp_path / "cache")
    v10 = ModelVersion.objects.get(name="scene-lite0-v10")
    kept = retrain_warm_start.active_second_opinion(v10, Path(settings.MODELS_DIR), log=lambda message: None)
    assert kept is not None and kept.cache_dir == tmp_path / "cache"

    asked: list[Any] = []

    def load(model_dir: Path, **options: Any) -> Any:
        asked.append(options.get("cache_dir"))
        raise RuntimeError("enough: the options were seen")

    monkeypatch.setattr(ml_training.second_opinion, "load", load)
    with pytest.raises(RuntimeError, match="enough"):
        ml_training.second_opinion.member_answers(
            [str(tmp_path / "unseen.jpg")],
            [0.3],  # "not a phone" above consulted_from: the member is asked
            spec=kept.spec,
            member_dir=kept.member_dir,
            threshold=0.5,
            cache_dir=kept.cache_dir,
        )
    assert asked == [tmp_path / "cache"]


def test_a_retrain_interrupted_says_what_was_left_instead_of_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneapp.management.commands import retrain as command

    def interrupted(**_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "retrain", interrupted)

    with pytest.raises(CommandError, match="Interrupted: nothing was registered") as refused:
        call_command("retrain", stdout=io.StringIO())
    assert refused.value.returncode == 130


def test_the_retrain_reads_a_data_dir_as_training_does_one_source_per_folder_not_per_label(tmp_path: Path) -> None:
    """The retrain had its own folder reader: a plain phone/ + not_phone/ folder's pictures got the sources
    ``phone`` and ``not_phone``, so its figures per source were figures per label. A manifest's sources stay,
    named with their folder."""
    from phoneapp.services.training_data import _folder_samples
    from tests.ml_drawing import write_scene_dataset

    plain = write_synthetic_folder(tmp_path / "my-pictures", per_label=2)
    scenes = write_scene_dataset(tmp_path / "scenes", per_label=2, size=64)

    assert {sample.source for sample in _folder_samples(plain)} == {"my-pictures"}
    scene_samples = _folder_samples(scenes)
    assert {sample.source.split(":")[0] for sample in scene_samples} == {"scenes"}
    assert all(sample.base_source != "scenes" for sample in scene_samples)
    assert any(sample.has_boxes for sample in scene_samples)


def test_evaluating_a_version_gives_its_figures_and_says_which_pictures_they_are_on(tmp_path: Path) -> None:
    from phoneapp.services.evaluation import model_version_evaluate

    data = write_synthetic_folder(tmp_path / "data", per_label=3)
    (data / "phone" / "broken.jpg").write_bytes(b"not a picture")

    metrics = model_version_evaluate(version=ModelVersion.objects.get(name="imagenet-zero-shot"), data_dir=data)

    assert metrics["model_version"] == "imagenet-zero-shot"
    assert metrics["count"] == 6
    assert metrics["unreadable_skipped"] == 1
    assert metrics["data"] == str(data)


def test_evaluating_a_version_with_no_reviewed_pictures_is_refused_before_loading_it() -> None:
    from phoneapp.services.errors import NothingToEvaluate
    from phoneapp.services.evaluation import model_version_evaluate

    with pytest.raises(NothingToEvaluate, match="No readable labelled pictures"):
        model_version_evaluate(version=model_version_active())
