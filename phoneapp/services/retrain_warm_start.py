"""What a retrain's candidate continues from the active scene model: its network shape (tuned trunk blocks, head
layers), its second opinion and its trained weights. When the active model is another kind, or cannot be read, the
candidate starts fresh with the recipe's defaults.

Used by :mod:`phoneapp.services.retraining` before it trains the candidate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from inference.manifest import ModelLoadError, ModelManifest, manifest_checksum, read_manifest
from inference.scene_options import SceneNetworkOptions
from phoneapp.models import ModelVersion
from phoneapp.services.model_versions import model_dir_of
from phoneapp.services.promotion import Log

if TYPE_CHECKING:  # the training modules import torch: loaded only when a retrain runs
    from ml_training.scene.train import SecondOpinion

SCENE_KIND = "scene-detector"


def _active_scene_manifest(active: ModelVersion | None) -> ModelManifest | None:
    """The active model's manifest when it is a readable scene model, else None."""
    if active is None:
        return None
    try:
        manifest = read_manifest(model_dir_of(active))
    except ModelLoadError:
        return None
    return manifest if manifest.kind == SCENE_KIND else None


def active_network_shape(active: ModelVersion | None) -> dict[str, int | str]:
    """The active scene model's network options as recipe knobs: how many trunk blocks it tuned and whether its
    head has the global-context layer (both 0 for head-only models and other kinds), and how it pools its cells and
    how many heads it averages (a scene model's own, "max" pooling and one head for those written before these were
    options; the recipe's defaults otherwise)."""
    manifest = _active_scene_manifest(active)
    shape = SceneNetworkOptions.from_manifest_options(manifest.options if manifest is not None else {})
    knobs: dict[str, int | str] = {
        "trainable_blocks": shape.trainable_blocks,
        "global_context": int(shape.global_context),
    }
    if manifest is not None:
        knobs["picture_pooling"] = shape.picture_pooling
        knobs["heads"] = shape.heads
    return knobs


def active_second_opinion(active: ModelVersion | None, models_root: Path, log: Log) -> SecondOpinion | None:
    """The active scene model's second opinion (inference/second_opinion.py), kept for the candidate: compared
    without it, a candidate would lose the close-ups the member finds and never be promoted. None when the active
    model asks none, or its member is gone or changed (then the active model cannot load either)."""
    from ml_training.scene.train import SecondOpinion

    manifest = _active_scene_manifest(active)
    spec = manifest.second_opinion if manifest is not None else None
    if spec is None:
        return None
    member_dir = models_root / spec.model
    try:
        unchanged = manifest_checksum(member_dir) == spec.manifest_sha256
    except OSError:
        unchanged = False
    if not unchanged:
        log(f"second opinion {spec.model} is missing or changed: the candidate decides alone")
        return None
    log(f"the candidate keeps the second opinion of {spec.model} (at least {spec.at_least})")
    cache = Path(settings.INFERENCE_CACHE_DIR) if settings.INFERENCE_CACHE_DIR else None
    return SecondOpinion(spec, member_dir, cache_dir=cache)


def active_warm_start(
    active: ModelVersion | None, trainable_blocks: int, log: Log
) -> tuple[dict[str, Any] | None, str | None]:
    """The active scene model's trained weights (head, and tuned trunk blocks if any), to continue from; (None,
    None) when the active model is another kind (the candidate's head then starts fresh).

    When the active model tunes another number of trunk blocks than the candidate (``trainable_blocks``), only its
    head is reused (:func:`ml_training.scene.engine.warm_start_state`); the log says so.

    The shipped ``weights.pt`` has the calibration shift folded into each head's objectness bias
    (model_writer.py); it is added back here so training continues from the raw heads, and the candidate is
    re-calibrated by its own cross-validation.
    """
    if active is None:
        return None, None
    model_dir = model_dir_of(active)
    try:
        manifest = read_manifest(model_dir)
    except ModelLoadError:
        return None, None
    if manifest.kind != SCENE_KIND:
        log(f"active model {active.name} is a {manifest.kind}, not a scene model: the candidate starts fresh")
        return None, None
    import torch

    from ml_training.scene.model_writer import unfold_shift

    try:
        state = torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        # Missing or damaged weights: the candidate starts fresh, and scoring the active model then fails too, so
        # the candidate is registered inactive with that reason (it was a traceback, nothing registered).
        log(f"active model {active.name}'s weights cannot be read ({error}): the candidate starts fresh")
        return None, None
    shift = _calibration_shift(model_dir)
    state = unfold_shift(state, shift)
    log(f"warm start from {active.name} (calibration shift {shift:+.4f} unfolded)")
    tuned = SceneNetworkOptions.from_manifest_options(manifest.options).trainable_blocks
    if tuned != trainable_blocks:
        log(
            f"{active.name} tunes {tuned} trunk block(s), the candidate {trainable_blocks}: only its head is reused; "
            "the candidate's tuned blocks start from their ImageNet weights"
        )
    return state, active.name


def _calibration_shift(model_dir: Path) -> float:
    """The calibration shift the model writer folded into the shipped heads (``training.json``); 0 when it is not
    recorded."""
    try:
        return float(json.loads((model_dir / "training.json").read_text())["calibration"]["shift"])
    except (OSError, KeyError, TypeError, ValueError):
        return 0.0
