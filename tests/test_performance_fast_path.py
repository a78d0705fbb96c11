"""The fast CPU path gives the verdicts of the eager fp32 model, for every model kind, and falls back safely.

Correctness only: timings live in ``benchmarks/run.py``, where a busy machine cannot fail a test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# ONNX Runtime is a pinned requirement (the serving engine): a broken install fails here, never skips.
import onnxruntime  # noqa: F401
import pytest
import torch
from PIL import Image

from inference import Classifier, load, resolve_model_dir
from inference.drawing import drawn_pictures
from inference.export_cache import cached_export_path
from inference.finetuned_network import WEIGHTS_FILE, FineTunedPhoneNet
from inference.loader import export_missing
from inference.manifest import ModelManifest, read_manifest, sha256_file, write_manifest
from inference.onnx_engine import OnnxClassifier
from inference.preprocessing import PreprocessConfig, image_to_array

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "trained_models"
# One export cache per test process (export_cache), each export seconds: the tests stay in one (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("performance_fast_path")


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the module: each export costs seconds, and the key keeps models apart."""
    return tmp_path_factory.mktemp("exports")


def fine_tuned_model_dir(root: Path, *, multiscale_grid: int) -> Path:
    """A fine-tuned model version with a randomly initialised head, as training would write it."""
    torch.manual_seed(0)
    directory = root / "fine-tuned-test"
    directory.mkdir()
    network = FineTunedPhoneNet(freeze_blocks=12)
    torch.nn.init.normal_(network.head.cell_logits.weight, std=0.05)
    torch.save(network.trained_state_dict(), directory / WEIGHTS_FILE)
    manifest = ModelManifest(
        version="fine-tuned-test",
        kind="fine-tuned",
        files={WEIGHTS_FILE: sha256_file(directory / WEIGHTS_FILE)},
        options={"multiscale_grid": multiscale_grid},
    )
    write_manifest(directory, manifest)
    return directory


def test_fast_path_gives_the_zero_shot_models_probabilities(export_cache: Path) -> None:
    zero_shot = SHIPPED_MODELS / "imagenet-zero-shot"
    reference = load(zero_shot, engine="torch")
    fast = load(zero_shot, engine="onnxruntime", cache_dir=export_cache)
    assert isinstance(fast, OnnxClassifier) and fast.engine == "onnxruntime"
    pictures = drawn_pictures()
    expected = reference.phone_probabilities(pictures)
    actual = fast.phone_probabilities(pictures)
    assert actual == pytest.approx(expected, abs=1e-4)
    assert [p.label for p in fast.predict(pictures)] == [p.label for p in reference.predict(pictures)]


def test_fast_path_covers_multiscale_fine_tuned_models(tmp_path: Path) -> None:
    model_dir = fine_tuned_model_dir(tmp_path, multiscale_grid=1)
    reference = load(model_dir, engine="torch")
    fast = load(model_dir, engine="onnxruntime", cache_dir=tmp_path / "cache")
    assert isinstance(fast, OnnxClassifier)
    pictures = drawn_pictures(seed=1)
    assert fast.phone_probabilities(pictures) == pytest.approx(reference.phone_probabilities(pictures), abs=1e-4)


def test_a_long_list_is_scored_in_chunks_with_the_same_results(export_cache: Path) -> None:
    model_dir = resolve_model_dir(root=SHIPPED_MODELS)
    reference = load(model_dir, engine="torch")
    fast = load(model_dir, engine="onnxruntime", cache_dir=export_cache, max_batch=3)
    pictures = drawn_pictures() + drawn_pictures(seed=2)
    probabilities = fast.phone_probabilities(pictures)
    assert len(probabilities) == len(pictures)
    assert probabilities == pytest.approx(reference.phone_probabilities(pictures), abs=1e-4)


def test_a_restarted_process_reuses_the_checked_export(tmp_path: Path) -> None:
    model_dir = resolve_model_dir(root=SHIPPED_MODELS)
    first = load(model_dir, engine="onnxruntime", cache_dir=tmp_path)
    exports = list(tmp_path.glob("*.onnx"))
    second = load(model_dir, engine="onnxruntime", cache_dir=tmp_path)
    # One export per version served: the model's, and its second opinion's when it asks one.
    served = [second] if second.second_opinion is None else [second, second.second_opinion]
    assert len(exports) == len(served) and sorted(tmp_path.glob("*.onnx")) == sorted(exports)
    assert not first.from_cache and all(classifier.from_cache for classifier in served)
    pictures = drawn_pictures()
    assert second.phone_probabilities(pictures) == pytest.approx(first.phone_probabilities(pictures), abs=1e-6)


def test_torch_engine_chosen_by_argument_or_manifest_runs_the_eager_model(tmp_path: Path) -> None:
    model_dir = fine_tuned_model_dir(tmp_path, multiscale_grid=0)
    assert load(model_dir, engine="torch", cache_dir=tmp_path / "cache").engine == "torch"
    assert load(model_dir, engine="onnxruntime", cache_dir=tmp_path / "cache").engine == "onnxruntime"
    manifest = read_manifest(model_dir)
    write_manifest(model_dir, dataclasses.replace(manifest, options={**manifest.options, "engine": "torch"}))
    assert load(model_dir, cache_dir=tmp_path / "cache").engine == "torch"


def test_every_engine_and_kind_meets_the_one_classifier_contract(tmp_path: Path, export_cache: Path) -> None:
    model_dir = fine_tuned_model_dir(tmp_path, multiscale_grid=0)
    for engine in ("torch", "onnxruntime"):
        classifier = load(model_dir, engine=engine, cache_dir=export_cache)
        assert isinstance(classifier, Classifier)
        prediction, evidence = classifier.predict_and_explain(drawn_pictures()[0])
        assert prediction.model_version == "fine-tuned-test" and evidence is not None


def test_preprocessing_gives_torchvisions_numbers_bit_for_bit() -> None:
    import torchvision.transforms.functional as functional
    from torchvision.transforms import InterpolationMode

    configs = [
        PreprocessConfig(),
        PreprocessConfig(resize_size=256, center_crop=True),
        PreprocessConfig(resize_size=200, center_crop=True),  # crop larger than the resized picture: padding
        PreprocessConfig(interpolation="bicubic", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ]
    for width, height in [(320, 240), (240, 320), (224, 224), (101, 57), (999, 1000)]:
        picture = Image.effect_noise((width, height), 60).convert("RGB")
        for config in configs:
            mode = InterpolationMode(config.interpolation)
            if config.center_crop:
                resized = functional.center_crop(
                    functional.resize(picture, config.resize_size, interpolation=mode), [config.image_size] * 2
                )
            else:
                resized = functional.resize(picture, [config.image_size] * 2, interpolation=mode)
            expected = functional.normalize(
                functional.pil_to_tensor(resized).float().div_(255.0), mean=list(config.mean), std=list(config.std)
            )
            assert torch.equal(torch.from_numpy(image_to_array(picture, config)), expected), (width, height, config)


@pytest.mark.django_db
def test_worker_classifies_through_the_fast_path_from_a_non_filesystem_storage(alice, settings) -> None:
    """Several worker machines share an S3-compatible store: the worker must only use Django's storage API."""
    from phoneapp.models import UploadStatus
    from phoneapp.resident_model import resident_model
    from phoneapp.services.classification import upload_classify
    from tests.factories import make_upload

    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    settings.INFERENCE_ENGINE = ""
    upload = make_upload(alice, status=UploadStatus.PENDING)  # saved through the storage API, so into memory
    assert not any(Path(settings.MEDIA_ROOT).rglob("*.jpg"))  # nothing on a local disk to fall back on

    result = upload_classify(upload_id=upload.pk)

    assert result is not None and result.status == UploadStatus.DONE
    assert resident_model.current().classifier.engine == "onnxruntime"


def test_batch_api_keeps_order_and_reports_unreadable_pictures(export_cache: Path) -> None:
    from inference.images import ImageError
    from inference.runtime import predict_files
    from tests.images import encode

    fast = load(resolve_model_dir(root=SHIPPED_MODELS), engine="onnxruntime", cache_dir=export_cache)
    pictures = drawn_pictures()
    sources = [encode(pictures[0]), b"not a picture", *[encode(picture) for picture in pictures[1:]]]

    results = predict_files(fast, sources, workers=2, chunk=2)

    assert isinstance(results[1], ImageError)
    one_by_one = [fast.predict([picture])[0] for picture in _decoded(fast, sources[:1] + sources[2:])]
    assert [result for result in results if not isinstance(result, ImageError)] == one_by_one


def _decoded(classifier: Classifier, sources: list[bytes]) -> list[Image.Image]:
    from inference.images import open_image

    return [open_image(data, draft_size=classifier.manifest.preprocessing.draft_size) for data in sources]


def test_export_missing_says_whether_a_load_would_convert_the_model_or_its_second_opinion(tmp_path: Path) -> None:
    """What a resident model asks before switching: a version to convert first loads in the background."""
    model_dir = SHIPPED_MODELS / "scene-lite0-v10"  # read only: its manifest names a second opinion
    manifest = read_manifest(model_dir)
    assert manifest.second_opinion is not None
    member = read_manifest(SHIPPED_MODELS / manifest.second_opinion.model)
    cache = tmp_path / "cache"
    cache.mkdir()

    assert export_missing(model_dir, engine="onnxruntime", cache_dir=cache)
    assert not export_missing(model_dir, engine="torch", cache_dir=cache)  # eager torch converts nothing
    cached_export_path(cache, manifest).touch()
    assert export_missing(model_dir, engine="onnxruntime", cache_dir=cache)  # the second opinion's is missing
    cached_export_path(cache, member).touch()
    assert not export_missing(model_dir, engine="onnxruntime", cache_dir=cache)
    assert not export_missing(tmp_path / "no-such-model", engine="onnxruntime", cache_dir=cache)  # load says why
