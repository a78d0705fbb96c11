"""``manage.py sync_models``: a deploy's shipped models become known, and people's choices survive it."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from phoneapp.models import ModelVersion
from phoneapp.services.model_versions import model_version_activate

pytestmark = pytest.mark.django_db


def sync(settings) -> str:
    out = io.StringIO()
    call_command("sync_models", stdout=out)
    return out.getvalue()


def ship_copy(settings, name: str) -> Path:
    """A copy of the shipped zero-shot version under ``name`` in MODELS_DIR, as a deploy would bring a version;
    returns its manifest."""
    models = Path(settings.MODELS_DIR)
    shutil.copytree(models / "imagenet-zero-shot", models / name)
    manifest = models / name / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": name}))
    return manifest


def test_a_fresh_database_knows_no_model_until_sync_models_registers_them_and_activates_the_default(
    settings,
) -> None:
    assert not ModelVersion.objects.exists()  # migrate alone registers nothing any more

    report = sync(settings)

    shipped = {path.parent.name for path in Path(settings.MODELS_DIR).glob("*/manifest.json")}
    assert set(ModelVersion.objects.values_list("name", flat=True)) == shipped
    assert ModelVersion.objects.get(is_active=True).name == "imagenet-zero-shot"  # MODELS_DIR/ACTIVE of the tests
    assert f"{len(shipped)} model version(s) registered" in report


def test_running_it_again_changes_nothing_and_keeps_the_version_people_activated(settings) -> None:
    sync(settings)
    chosen = ModelVersion.objects.exclude(is_active=True).first()
    if chosen is None:
        pytest.skip("only one model version is shipped")
    model_version_activate(version=chosen)

    report = sync(settings)

    assert "0 model version(s) registered" in report
    assert ModelVersion.objects.get(is_active=True) == chosen


def test_a_deploy_that_ships_a_new_default_activates_it(settings) -> None:
    sync(settings)
    ship_copy(settings, "zero-shot-v9")
    (Path(settings.MODELS_DIR) / "ACTIVE").write_text("zero-shot-v9\n")

    sync(settings)

    assert ModelVersion.objects.get(is_active=True).name == "zero-shot-v9"


def test_the_admin_lists_the_active_version_first_then_the_newest_with_v10_above_v9(reviewer) -> None:
    """Registered by name, scene-lite0-v10 came between v1 and v2 (registration times sorted as text), buried
    in the newest-first list."""
    from tests.factories import client_for

    call_command("sync_models", stdout=io.StringIO())
    response = client_for(reviewer).get("/admin/phoneapp/modelversion/")
    names = [version.name for version in response.context["cl"].result_list]

    assert names[0] == ModelVersion.objects.get(is_active=True).name
    scene = [name for name in names if name.startswith("scene-lite0-v")]
    assert scene == sorted(scene, key=lambda name: -int(name.rsplit("v", 1)[1]))


def test_the_admin_version_list_says_how_many_pictures_each_versions_accuracy_comes_from(reviewer) -> None:
    """A retrain cross-validated on 15 reviewed uploads showed "accuracy 1.000" beside the shipped model's 0.915 on
    2,595 pictures, with nothing to tell the two apart."""
    from tests.factories import client_for

    call_command("sync_models", stdout=io.StringIO())
    ModelVersion.objects.create(
        name="retrain-20261207-0500",
        path="retrain-20261207-0500",
        checksum="0" * 64,
        metrics={"cross_validation": {"all": {"accuracy": 1.0, "f1": 1.0, "roc_auc": 1.0, "count": 15}}},
    )
    response = client_for(reviewer).get("/admin/phoneapp/modelversion/")
    names = [version.name for version in response.context["cl"].result_list]
    cells = re.findall(r'<td class="field-measured_on">([^<]*)</td>', response.content.decode())
    rows = dict(zip(names, cells, strict=True))

    assert rows["retrain-20261207-0500"] == "15 (CV)"
    assert rows["scene-lite0-v10"] == "2,595 (CV)"
    assert rows["finetuned-lite2-v2"] == "1,735 (CV)"
    assert rows["imagenet-zero-shot"] == "—"


def test_an_empty_models_dir_fails_the_deploy_step_naming_what_to_do(settings, tmp_path: Path) -> None:
    """``MODELS_DIR`` moved out of the checkout as .env.example suggests, but nothing copied there: the command said
    "0 model version(s) registered: none." and succeeded, and the site had no model to classify with."""
    from django.core.management.base import CommandError

    settings.MODELS_DIR = tmp_path / "srv-models"
    settings.MODELS_DIR.mkdir()

    with pytest.raises(CommandError, match=r"No model version is active.*copy the release's trained_models/"):
        sync(settings)


def test_the_active_versions_files_gone_from_models_dir_fail_the_deploy_step(settings) -> None:
    from django.core.management.base import CommandError

    sync(settings)
    active = ModelVersion.objects.get(is_active=True)
    shutil.rmtree(Path(settings.MODELS_DIR) / active.name)

    with pytest.raises(CommandError, match=f"The active model version {active.name} cannot be loaded"):
        sync(settings)


def test_activate_model_rolls_back_from_a_shell_and_refuses_a_version_that_cannot_load(settings) -> None:
    """The admin was the only way to roll back; an operator at a shell had none."""
    from django.core.management.base import CommandError

    sync(settings)
    manifest = ship_copy(settings, "zero-shot-b")
    sync(settings)
    out = io.StringIO()

    call_command("activate_model", "zero-shot-b", stdout=out)

    assert ModelVersion.objects.get(is_active=True).name == "zero-shot-b"
    assert "Activated zero-shot-b" in out.getvalue()
    listing = io.StringIO()
    call_command("activate_model", stdout=listing)
    assert listing.getvalue().splitlines()[0] == "* zero-shot-b"

    manifest.write_text(manifest.read_text().replace("{", '{"edited": true, ', 1))
    call_command("activate_model", "imagenet-zero-shot", stdout=io.StringIO())
    with pytest.raises(CommandError, match="Not activated: workers could not load zero-shot-b"):
        call_command("activate_model", "zero-shot-b", stdout=io.StringIO())
    assert ModelVersion.objects.get(is_active=True).name == "imagenet-zero-shot"
    with pytest.raises(CommandError, match="No model version named 'nope'"):
        call_command("activate_model", "nope")


def test_activate_model_warns_when_the_version_is_worse_on_the_same_pictures(settings) -> None:
    """Our first retrain's refused candidate (20 of 30 ground-truth pictures against the active version's 29) was
    activated from a shell with only "Activated": the admin shows the scores and the retrain's decision first."""
    from phoneapp.models import VersionScore

    sync(settings)
    ship_copy(settings, "zero-shot-b")
    sync(settings)
    active = ModelVersion.objects.get(is_active=True)
    candidate = ModelVersion.objects.get(name="zero-shot-b")
    ModelVersion.objects.filter(pk=candidate.pk).update(metrics={"decision": "not promoted: worse on ground truth."})
    for version, correct in ((candidate, 20), (active, 29)):
        VersionScore.objects.create(
            version=version, picture_set="ground_truth", count=30, correct=correct, accuracy=correct / 30,
            pictures_digest="d" * 64,
        )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()

    call_command("activate_model", "zero-shot-b", stdout=out, stderr=err)

    assert "Activated zero-shot-b" in out.getvalue()
    assert f"Ground truth: zero-shot-b 20 of 30, {active.name} 29 of 30" in err.getvalue()
    assert "decided: not promoted: worse on ground truth." in err.getvalue()
    assert f"To go back: manage.py activate_model {active.name}" in err.getvalue()


def test_activate_model_prepares_the_fast_export_before_workers_switch(settings, tmp_path: Path) -> None:
    """Activated unprepared, every worker process converts the model to ONNX itself (in the background since the
    soak test saw classification stop ~16 s meanwhile) and serves the previous version until then. The command
    converts it first, into the cache the workers on this machine read, so they take it at their next prediction."""
    from phoneapp.services import model_versions

    settings.INFERENCE_CACHE_DIR = str(tmp_path / "cache")
    sync(settings)
    ship_copy(settings, "zero-shot-b")
    sync(settings)
    activated_with_cache: list[list[str]] = []
    activate = model_versions.model_version_activate

    def activate_and_look(*, version: ModelVersion) -> ModelVersion:
        activated_with_cache.append(sorted(path.suffix for path in (tmp_path / "cache").glob("*")))
        return activate(version=version)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_versions, "model_version_activate", activate_and_look)
        call_command("activate_model", "zero-shot-b", stdout=io.StringIO())

    assert ".onnx" in activated_with_cache[0]  # in the cache before the version became active
    assert ModelVersion.objects.get(is_active=True).name == "zero-shot-b"


def test_activate_model_says_it_makes_the_export_only_when_it_does(settings, tmp_path: Path) -> None:
    """It said "Preparing ... (its ONNX export, once per machine)" on every activation, the export already cached
    or not: an operator rolling back and forth read that seconds of work were done again."""
    settings.INFERENCE_CACHE_DIR = str(tmp_path / "cache")
    sync(settings)
    active = ModelVersion.objects.get(is_active=True).name
    ship_copy(settings, "zero-shot-b")
    sync(settings)
    first, again = io.StringIO(), io.StringIO()

    call_command("activate_model", "zero-shot-b", stdout=first)
    call_command("activate_model", active, stdout=io.StringIO())
    call_command("activate_model", "zero-shot-b", stdout=again)

    assert "making its ONNX export" in first.getvalue()
    assert "ONNX export" not in again.getvalue() and "Activated zero-shot-b" in again.getvalue()


def test_activating_without_the_export_switches_at_once_and_leaves_the_cache_empty(settings, tmp_path: Path) -> None:
    """The admin's activation is a web request: it must not spend seconds converting the model to ONNX."""
    from phoneapp.services.model_versions import model_version_activate_if_loadable

    settings.INFERENCE_CACHE_DIR = str(tmp_path / "cache")
    sync(settings)
    ship_copy(settings, "zero-shot-b")
    sync(settings)
    chosen = ModelVersion.objects.get(name="zero-shot-b")
    announced: list[str] = []

    model_version_activate_if_loadable(
        version=chosen, prepare_export=False, on_export_start=lambda: announced.append("export")
    )

    assert ModelVersion.objects.get(is_active=True).name == "zero-shot-b"
    assert announced == []
    assert not list((tmp_path / "cache").glob("*.onnx"))


def test_the_version_list_puts_the_active_one_first_then_the_newest(settings) -> None:
    from phoneapp.selectors.model_versions import model_version_list

    sync(settings)
    ship_copy(settings, "zero-shot-b")
    sync(settings)
    newest = ModelVersion.objects.get(name="zero-shot-b")

    listed = model_version_list()

    assert listed[0] == ModelVersion.objects.get(is_active=True)
    assert listed[1] == newest
    assert len(listed) == ModelVersion.objects.count()
