"""``manage.py sync_models``: a deploy's shipped models become known, and people's choices survive it."""

from __future__ import annotations

import io
import json
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
    models = Path(settings.MODELS_DIR)
    shutil.copytree(models / "imagenet-zero-shot", models / "zero-shot-v9")
    manifest = models / "zero-shot-v9" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": "zero-shot-v9"}))
    (models / "ACTIVE").write_text("zero-shot-v9\n")

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
