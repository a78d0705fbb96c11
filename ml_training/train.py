"""Fine-tuning EfficientNet-Lite0 to tell phones from everything else.

Recipe (every knob is a :class:`TrainConfig` field and a ``python -m ml_training train`` flag):

1. Decode every picture once; group near-duplicates by perceptual hash; spread groups over ``folds`` folds.
2. Render ``views_per_image`` augmented views of each picture and of small-phone composites made within each
   fold; run the frozen trunk over them once (:mod:`ml_training.views`).
3. Train the tail (last blocks, head conv, pooled phone head) on the cached features with class-balanced loss,
   early stopping on the validation fold.
4. Fit temperature and threshold on the validation fold; measure on the test fold (never seen before).
5. Optionally repeat 3-4 for every rotation of (test, validation) folds: grouped k-fold cross-validation.

The shipped model is rotation 0 (test fold ``test_fold``, validation fold the next one).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from inference.backbone import imagenet_weights_path
from inference.finetuned_network import KIND, WEIGHTS_FILE, FineTunedPhoneNet
from inference.manifest import ModelManifest, sha256_file
from inference.preprocessing import PreprocessConfig
from ml_training.augment import AugmentConfig
from ml_training.calibration import choose_threshold, fit_temperature
from ml_training.checkpoint import write_json_file, write_model_manifest, write_state_dict
from ml_training.data import Sample, decode_samples
from ml_training.metrics import binary_metrics, format_metrics
from ml_training.splits import DEFAULT_MAX_DISTANCE, grouped_kfold
from ml_training.views import (
    COMPOSITE_DISTRACTOR,
    COMPOSITE_PHONE,
    HAND_DISTRACTOR,
    HAND_PHONE,
    REAL,
    VARIED_DISTRACTOR,
    VARIED_PHONE,
    ViewBank,
    build_view_bank,
)

# Composite families reported on their own; "composites" is v1's family, so its figures compare across versions.
COMPOSITE_FAMILIES = {
    "composites": (COMPOSITE_PHONE, COMPOSITE_DISTRACTOR),
    "composites_varied": (VARIED_PHONE, VARIED_DISTRACTOR),
    "composites_hand": (HAND_PHONE, HAND_DISTRACTOR),
}

Log = Callable[[str], None]

PREDICTIONS_FILE = "predictions.json"


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; saved in the model directory so the run can be repeated.

    The defaults are the shipped model's recipe (finetuned-lite2-v2, docs/model.md), so ``manage.py retrain``
    trains candidates like the active version; only cross-validation and the pooled threshold, which need five
    trainings instead of one, are left to the command line.
    """

    architecture: str = "efficientnet-lite2"
    image_size: int = 224
    # Blocks 0..freeze_blocks-1 stay ImageNet's. Lite2 has 21 blocks: 16 trains its last stage of 7x7 blocks (16-20)
    # and the head; Lite0 has 16 (v1 froze 12; 16 trains the head convolution and head only).
    freeze_blocks: int = 16
    # Render (and cache) the views' features after this many blocks instead (-1: freeze_blocks), then run the
    # remaining frozen blocks over them: a cache made at 10 also serves runs that freeze 10, 11 or 12 blocks.
    cache_freeze_blocks: int = -1
    head_dropout: float = 0.2
    epochs: int = 8
    patience: int = 2
    batch_size: int = 32
    head_lr: float = 1e-3
    tail_lr: float = 3e-4
    weight_decay: float = 1e-4
    views_per_image: int = 1
    # Phone composites per fold (and as many distractor composites); 0 turns composites off.
    composites_per_fold: int = 80
    # More pairs per fold of varied cut-out composites (darker, edge-on, partly hidden by fingers or cut off) and
    # of small in-hand patches (hands holding a phone / a look-alike); see ml_training.composites.
    varied_composites_per_fold: int = 0
    hand_composites_per_fold: int = 0
    folds: int = 5
    test_fold: int = 0
    cross_validate: bool = False
    max_false_positive_rate: float = 0.01
    # Which validation items the temperature is fitted on: "all" (real pictures and composites, as v1) or "real"
    # (composites are harder than real pictures and made the temperature too soft for them: docs/model.md).
    calibrate_on: str = "real"
    # Where the decision threshold is chosen: "fold" (each rotation's own validation fold, as v1) or "pooled"
    # (the calibrated validation pictures of every rotation that did not validate on the test fold; needs
    # cross_validate). One high-scoring look-alike among ~166 validation negatives decides a "fold" threshold.
    threshold_from: str = "fold"
    # Composite families left out of training and validation (comma-separated: "varied", "hand"); the test fold
    # still reports them. For ablations on one cached view bank.
    train_without: str = ""
    # Multi-scale inference: the whole picture plus a grid x grid lattice of overlapping crops (each
    # ``multiscale_fraction`` of a side), the strongest phone evidence kept. With a grid, validation and test are
    # scored that way, so temperature, threshold and every figure are the multi-scale model's own; the manifest
    # tells inference to do the same.
    multiscale_grid: int = 0
    multiscale_fraction: float = 0.6
    # Crops of not_phone pictures are not_phone too: with a grid, training also draws them as views of negative
    # items, so the tail learns that a zoomed-in look-alike is no phone (multi-scale scores every crop).
    train_on_negative_crops: bool = True
    max_hash_distance: int = DEFAULT_MAX_DISTANCE
    seed: int = 0
    threads: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def preprocessing(self) -> PreprocessConfig:
        # Squeeze the whole picture to a square, no centre crop: a phone at the border must stay in view.
        return PreprocessConfig(image_size=self.image_size, resize_size=self.image_size, center_crop=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RotationResult:
    """One (test fold, validation fold) run: the trained tail, its calibration and what it scored."""

    test_fold: int
    val_fold: int
    state: dict[str, torch.Tensor]
    temperature: float
    threshold: float
    sharpness: float
    epochs: list[dict[str, float]]
    test_indices: torch.Tensor
    test_probabilities: np.ndarray
    metrics: dict[str, Any]
    val_indices: torch.Tensor | None = None
    val_logits: np.ndarray | None = None
    test_logits: np.ndarray | None = None
    # Per view (whole picture, then each crop) before taking the strongest: for trying other view sets offline.
    val_view_logits: np.ndarray | None = None
    test_view_logits: np.ndarray | None = None


@dataclass
class TrainResult:
    """What :func:`train_model` produced: the model directory, its manifest, and every figure measured."""

    model_dir: Path
    manifest: ModelManifest
    metrics: dict[str, Any]
    seconds: float


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from log-odds without overflow warnings for confident logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def class_weights(targets: torch.Tensor) -> torch.Tensor:
    """Per-item loss weights that give both classes equal total weight."""
    positives = targets.sum().clamp(min=1)
    negatives = (len(targets) - targets.sum()).clamp(min=1)
    return torch.where(targets == 1, len(targets) / (2 * positives), len(targets) / (2 * negatives))


def train_one_epoch(
    network: FineTunedPhoneNet,
    bank: ViewBank,
    indices: torch.Tensor,
    weights: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batch_size: int,
    generator: torch.Generator,
    *,
    negative_crops: bool = False,
) -> float:
    """One pass over ``indices`` in random order, one random cached view per item; returns the mean loss.

    The clean view is one of the choices: it is a legitimate training picture too, and with few augmented
    views (rendering them is the slow part on a CPU) it adds variety for free. With ``negative_crops`` (and a
    bank with crops), a not_phone item's view is half the time one of its crops instead.
    """
    network.set_train_mode()
    order = indices[torch.randperm(len(indices), generator=generator)]
    views_per_item = bank.views.shape[1] + 1
    crops = bank.crops if negative_crops else None
    total, seen = 0.0, 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        view = torch.randint(views_per_item, (len(batch),), generator=generator)
        augmented = bank.views[batch, view.clamp(max=views_per_item - 2)]
        features = torch.where((view == views_per_item - 1).view(-1, 1, 1, 1), bank.clean[batch], augmented)
        if crops is not None:
            features = _with_negative_crops(features, crops, batch, bank.targets[batch], generator)
        logits = network.tail(features)
        losses = F.binary_cross_entropy_with_logits(logits, bank.targets[batch], reduction="none")
        loss = (losses * weights[batch]).sum() / weights[batch].sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(batch)
        seen += len(batch)
    return total / max(1, seen)


def _with_negative_crops(
    features: torch.Tensor,
    crops: torch.Tensor,
    batch: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """``features`` with half the not_phone items' views swapped for one of their crops (a phone picture's crop
    may have cut the phone away, so positives keep their whole-picture views)."""
    swap = (targets == 0) & (torch.rand(len(batch), generator=generator) < 0.5)
    crop = crops[batch, torch.randint(crops.shape[1], (len(batch),), generator=generator)]
    return torch.where(swap.view(-1, 1, 1, 1), crop, features)


@torch.inference_mode()
def evaluate(network: FineTunedPhoneNet, features: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Uncalibrated phone logits for cached trunk features (the clean views)."""
    network.eval()
    return torch.cat([network.tail(features[i : i + batch_size]) for i in range(0, len(features), batch_size)])


def view_logits(network: FineTunedPhoneNet, bank: ViewBank, indices: torch.Tensor) -> torch.Tensor:
    """Logits (N, 1 + crops) of each item's whole picture and, when the bank has them, of its crops."""
    logits = evaluate(network, bank.clean[indices]).unsqueeze(1)
    if bank.crops is None:
        return logits
    crops = bank.crops[indices]
    crop_logits = evaluate(network, crops.flatten(0, 1)).view(len(indices), crops.shape[1])
    return torch.cat([logits, crop_logits], dim=1)


def picture_logits(network: FineTunedPhoneNet, bank: ViewBank, indices: torch.Tensor) -> torch.Tensor:
    """Each item's logit as inference computes it: the whole picture's, or the strongest of it and its crops."""
    return view_logits(network, bank, indices).max(dim=1).values


def _log_loss(logits: torch.Tensor, targets: torch.Tensor) -> float:
    weights = class_weights(targets)
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return float((losses * weights).sum() / weights.sum())


def real_mask(bank: ViewBank, indices: torch.Tensor) -> np.ndarray:
    """Which of ``indices`` are real pictures (not composites): calibration and false-positive limits use those."""
    return np.array([bank.kinds[i] == REAL for i in indices.tolist()], dtype=bool)


def summarise(
    bank: ViewBank, indices: torch.Tensor, probabilities: np.ndarray, threshold: float | np.ndarray
) -> dict[str, Any]:
    """Metrics on the real pictures (overall and per source) and on the composites of the given items."""
    kinds = np.array([bank.kinds[i] for i in indices.tolist()])
    sources = np.array([bank.sources[i] for i in indices.tolist()])
    targets = bank.targets[indices].numpy()
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), probabilities.shape)

    def part(mask: np.ndarray) -> dict[str, Any]:
        return binary_metrics(probabilities[mask], targets[mask], thresholds[mask]).to_dict()

    real = kinds == REAL
    summary: dict[str, Any] = {
        "shared_set": part(real),
        "by_source": {source: part(real & (sources == source)) for source in sorted(set(sources[real]))},
    }
    for name, family in COMPOSITE_FAMILIES.items():
        composite = np.isin(sources, family) & (kinds != REAL)
        if composite.any():
            composite_metrics = part(composite)
            composite_metrics["small_phone_recall"] = composite_metrics["recall"]
            composite_metrics["distractor_false_positive_rate"] = composite_metrics["false_positive_rate"]
            summary[name] = composite_metrics
    return summary


def fit_rotation(
    bank: ViewBank, config: TrainConfig, test_fold: int, log: Log, generator: torch.Generator
) -> RotationResult:
    """Train the tail with the test fold held out and the next fold for validation; calibrate; measure."""
    val_fold = (test_fold + 1) % config.folds
    train_folds = [f for f in range(config.folds) if f not in (test_fold, val_fold)]
    train_idx, val_idx, test_idx = bank.select(train_folds), bank.select([val_fold]), bank.select([test_fold])
    if config.train_without:
        families = [COMPOSITE_FAMILIES[f"composites_{family}"] for family in config.train_without.split(",")]
        excluded = {source for family in families for source in family}
        train_idx, val_idx = (
            idx[torch.tensor([bank.sources[i] not in excluded for i in idx.tolist()], dtype=torch.bool)]
            for idx in (train_idx, val_idx)
        )
    network = FineTunedPhoneNet(
        config.architecture, freeze_blocks=config.freeze_blocks, head_dropout=config.head_dropout
    )
    head_parameters = list(network.head.parameters())
    head_ids = {id(p) for p in head_parameters}
    tail_parameters = [p for m in network.tail_modules() for p in m.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [{"params": head_parameters, "lr": config.head_lr}, {"params": tail_parameters, "lr": config.tail_lr}],
        weight_decay=config.weight_decay,
    )
    steps = config.epochs * max(1, -(-len(train_idx) // config.batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    weights = torch.zeros(len(bank.targets))
    weights[train_idx] = class_weights(bank.targets[train_idx])
    best_loss, best_state, best_epoch, epochs = float("inf"), network.trained_state_dict(), 0, []
    for epoch in range(config.epochs):
        started = time.monotonic()
        train_loss = train_one_epoch(
            network,
            bank,
            train_idx,
            weights,
            optimizer,
            scheduler,
            config.batch_size,
            generator,
            negative_crops=config.train_on_negative_crops,
        )
        val_logits = picture_logits(network, bank, val_idx)
        val_loss = _log_loss(val_logits, bank.targets[val_idx])
        val_accuracy = float(((val_logits > 0).float() == bank.targets[val_idx]).float().mean())
        epochs.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "seconds": time.monotonic() - started,
            }
        )
        log(
            f"rotation {test_fold} epoch {epoch}: train_loss={train_loss:.4f} val_loss={val_loss:.4f} "
            f"val_acc={val_accuracy:.4f} ({epochs[-1]['seconds']:.0f}s)"
        )
        if val_loss < best_loss:
            best_loss, best_state, best_epoch = val_loss, network.trained_state_dict(), epoch
        elif epoch - best_epoch >= config.patience:
            log(f"rotation {test_fold}: early stop, best epoch {best_epoch}")
            break
    network.load_trained_state_dict(best_state)
    val_views = view_logits(network, bank, val_idx).numpy()
    val_logits = val_views.max(axis=1)
    val_targets = bank.targets[val_idx].numpy()
    # The false-positive limit is about real pictures (product photos, look-alikes); pasted distractors are
    # reported on their own rather than allowed to push the threshold up for everyone.
    real = real_mask(bank, val_idx)
    if config.calibrate_on == "real":
        temperature = fit_temperature(val_logits[real], val_targets[real])
    elif config.calibrate_on == "all":
        temperature = fit_temperature(val_logits, val_targets)
    else:
        raise ValueError(f"calibrate_on must be 'all' or 'real', not {config.calibrate_on!r}.")
    threshold = choose_threshold(
        sigmoid(val_logits[real] / temperature),
        val_targets[real],
        max_false_positive_rate=config.max_false_positive_rate,
    )
    test_views = view_logits(network, bank, test_idx).numpy()
    test_logits = test_views.max(axis=1)
    test_probabilities = sigmoid(test_logits / temperature)
    metrics = summarise(bank, test_idx, test_probabilities, threshold)
    metrics["validation"] = summarise(bank, val_idx, sigmoid(val_logits / temperature), threshold)
    test_real = real_mask(bank, test_idx)
    log(
        format_metrics(
            f"rotation {test_fold} test shared_set",
            binary_metrics(test_probabilities[test_real], bank.targets[test_idx].numpy()[test_real], threshold),
        )
    )
    return RotationResult(
        test_fold=test_fold,
        val_fold=val_fold,
        state=best_state,
        temperature=temperature,
        threshold=threshold,
        sharpness=network.head.sharpness.item(),
        epochs=epochs,
        test_indices=test_idx,
        test_probabilities=test_probabilities,
        metrics=metrics,
        val_indices=val_idx,
        val_logits=val_logits,
        test_logits=test_logits,
        val_view_logits=val_views,
        test_view_logits=test_views,
    )


def pooled_thresholds(bank: ViewBank, rotations: Sequence[RotationResult], config: TrainConfig) -> dict[int, float]:
    """Each rotation's threshold chosen on the pooled, calibrated real validation pictures of the others.

    Rotation k pools every rotation whose validation fold is not k's test fold, so no test picture's score
    takes part in choosing the threshold it is judged by. Calibration puts the rotations' probabilities on one
    scale, which is what makes pooling them meaningful; four folds give ~660 real negatives instead of ~166.
    """
    pooled: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for rotation in rotations:
        assert rotation.val_indices is not None and rotation.val_logits is not None
        real = real_mask(bank, rotation.val_indices)
        probabilities = sigmoid(rotation.val_logits[real] / rotation.temperature)
        pooled[rotation.val_fold] = (probabilities, bank.targets[rotation.val_indices].numpy()[real])
    thresholds = {}
    for rotation in rotations:
        parts = [pooled[fold] for fold in sorted(pooled) if fold != rotation.test_fold]
        thresholds[rotation.test_fold] = choose_threshold(
            np.concatenate([p for p, _ in parts]),
            np.concatenate([t for _, t in parts]),
            max_false_positive_rate=config.max_false_positive_rate,
        )
    return thresholds


def rescore(bank: ViewBank, rotation: RotationResult, threshold: float) -> RotationResult:
    """The same rotation judged at another threshold (its probabilities and temperature unchanged)."""
    assert rotation.val_indices is not None and rotation.val_logits is not None
    metrics = summarise(bank, rotation.test_indices, rotation.test_probabilities, threshold)
    metrics["validation"] = summarise(
        bank, rotation.val_indices, sigmoid(rotation.val_logits / rotation.temperature), threshold
    )
    return dataclasses.replace(rotation, threshold=threshold, metrics=metrics)


def shipped_figures(rotation: RotationResult) -> dict[str, Any]:
    """The manifest's ``test`` and ``validation`` figures: the shipped rotation's, at its threshold."""
    return {
        "test": {key: value for key, value in rotation.metrics.items() if key != "validation"},
        "validation": rotation.metrics["validation"],
    }


def cross_validation_summary(bank: ViewBank, rotations: Sequence[RotationResult]) -> dict[str, Any]:
    """Out-of-fold metrics pooled over all rotations (each picture scored once, by the model that never saw it)."""
    indices = torch.cat([r.test_indices for r in rotations])
    probabilities = np.concatenate([r.test_probabilities for r in rotations])
    thresholds = np.concatenate([np.full(len(r.test_indices), r.threshold) for r in rotations])
    pooled = summarise(bank, indices, probabilities, thresholds)
    accuracies = [r.metrics["shared_set"]["accuracy"] for r in rotations]
    pooled["folds"] = len(rotations)
    pooled["shared_set_accuracy_per_fold"] = [round(a, 4) for a in accuracies]
    pooled["per_fold"] = [
        {
            "test_fold": r.test_fold,
            "temperature": round(r.temperature, 4),
            "threshold": round(r.threshold, 4),
            "shared_set": r.metrics["shared_set"],
            **{name: r.metrics.get(name) for name in COMPOSITE_FAMILIES if name in r.metrics},
        }
        for r in rotations
    ]
    return pooled


def train_model(
    samples: Sequence[Sample],
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    version: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Log = print,
) -> TrainResult:
    """Train, calibrate and measure a fine-tuned model and write it to ``out_dir`` as a loadable model version.

    ``samples`` may mix the shared set with reviewed uploads; ``Sample.group`` keeps related pictures in one
    fold. ``data_root`` only shortens paths in the saved split. ``cache_dir`` keeps the rendered views' trunk
    features between runs with the same pictures and view settings (the slow part on a CPU), so trying other
    tail settings costs only the tail's training. The manifest is written last, so ``out_dir`` becomes loadable
    only once everything else is in place.
    """
    started = time.monotonic()
    if config.folds < 3:
        raise ValueError("Need at least 3 folds: one to test, one to validate, the rest to train.")
    if len({sample.target for sample in samples}) < 2:
        raise ValueError("Training needs pictures of both phone and not_phone.")
    if config.threshold_from not in ("fold", "pooled"):
        raise ValueError(f"threshold_from must be 'fold' or 'pooled', not {config.threshold_from!r}.")
    if config.multiscale_grid < 0 or not 0 < config.multiscale_fraction <= 1:
        raise ValueError(
            f"multiscale_grid must be 0 or more and multiscale_fraction in (0, 1], not {config.multiscale_grid} "
            f"and {config.multiscale_fraction}."
        )
    if config.threshold_from == "pooled" and not config.cross_validate:
        raise ValueError("threshold_from='pooled' needs cross_validate: it pools the rotations' validation folds.")
    torch.set_num_threads(config.threads)
    generator = seed_everything(config.seed)
    log("config: " + json.dumps(config.to_dict(), sort_keys=True))
    folds, bank = _cached_or_new_views(samples, config, cache_dir, log)
    log(
        f"view bank: {len(bank.targets)} items, features {tuple(bank.views.shape[2:])} "
        f"({time.monotonic() - started:.0f}s)"
    )
    shipped = fit_rotation(bank, config, config.test_fold, log, generator)
    rotations = {config.test_fold: shipped}
    metrics: dict[str, Any] = {
        **shipped_figures(shipped),
        "head_sharpness": round(shipped.sharpness, 4),
        "training_seconds": round(time.monotonic() - started, 1),
    }
    predictions = {"test": _predictions(bank, samples, [shipped], data_root)}
    name = version or Path(out_dir).name
    result = _write_model(Path(out_dir), name, samples, folds, shipped, config, metrics, predictions, data_root)
    log(f"wrote {result.version} ({time.monotonic() - started:.0f}s)")
    if config.cross_validate:
        # The shipped model is usable (and measurable) while the other rotations train; the manifest is
        # rewritten with the cross-validation figures at the end.
        for fold in range(config.folds):
            if fold not in rotations:
                rotations[fold] = fit_rotation(bank, config, fold, log, generator)
        if config.threshold_from == "pooled":
            for fold, threshold in pooled_thresholds(bank, list(rotations.values()), config).items():
                rotations[fold] = rescore(bank, rotations[fold], threshold)
                log(f"rotation {fold}: pooled validation threshold {threshold:.3f}")
            shipped = rotations[config.test_fold]
            metrics.update(shipped_figures(shipped))
            predictions["test"] = _predictions(bank, samples, [shipped], data_root)
        metrics["cross_validation"] = cross_validation_summary(bank, [rotations[f] for f in sorted(rotations)])
        metrics["cross_validation_seconds"] = round(time.monotonic() - started, 1)
        predictions["cross_validation"] = _predictions(
            bank, samples, [rotations[f] for f in sorted(rotations)], data_root
        )
        result = _write_model(Path(out_dir), name, samples, folds, shipped, config, metrics, predictions, data_root)
        log(f"wrote {result.version} with cross-validation ({time.monotonic() - started:.0f}s)")
    if cache_dir is not None:
        # Raw logits (and weights) of every rotation, for trying calibration, threshold and view-set policies
        # without retraining.
        torch.save(
            {
                "bank": {"targets": bank.targets, "kinds": bank.kinds, "sources": bank.sources, "folds": bank.folds},
                "rotations": {
                    fold: {
                        "val_indices": r.val_indices,
                        "val_logits": r.val_logits,
                        "test_indices": r.test_indices,
                        "test_logits": r.test_logits,
                        "val_view_logits": r.val_view_logits,
                        "test_view_logits": r.test_view_logits,
                        "temperature": r.temperature,
                        "threshold": r.threshold,
                        "state": r.state,
                    }
                    for fold, r in rotations.items()
                },
            },
            Path(cache_dir) / f"logits-{name}.pt",
        )
    return TrainResult(model_dir=Path(out_dir), manifest=result, metrics=metrics, seconds=time.monotonic() - started)


def _cached_or_new_views(
    samples: Sequence[Sample], config: TrainConfig, cache_dir: str | os.PathLike[str] | None, log: Log
) -> tuple[list[int], ViewBank]:
    """Views from the cache if any run rendered them, else rendered now (and cached when ``cache_dir`` is set).

    A cache made with fewer frozen blocks also serves: its features are run through the extra frozen blocks,
    which costs a small fraction of rendering, so comparing split points does not mean rendering again.
    """
    if cache_dir is not None:
        for freeze in range(config.freeze_blocks, -1, -1):
            path = Path(cache_dir) / f"views-{_bank_key(samples, dataclasses.replace(config, freeze_blocks=freeze))}.pt"
            if path.is_file():
                folds, bank = torch.load(path, weights_only=False)
                log(f"view bank loaded from {path} (features after {freeze} blocks)")
                return folds, advance_bank(bank, config, freeze)
    render_config = config
    if 0 <= config.cache_freeze_blocks < config.freeze_blocks:
        render_config = dataclasses.replace(config, freeze_blocks=config.cache_freeze_blocks)
    folds, bank = _build_folds_and_views(samples, render_config, log)
    if cache_dir is not None:
        path = Path(cache_dir) / f"views-{_bank_key(samples, render_config)}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save((folds, bank), path)
    return folds, advance_bank(bank, config, render_config.freeze_blocks)


@torch.inference_mode()
def advance_bank(bank: ViewBank, config: TrainConfig, frozen_in_bank: int) -> ViewBank:
    """The same views as features after ``config.freeze_blocks`` blocks instead of ``frozen_in_bank``."""
    if frozen_in_bank == config.freeze_blocks:
        return bank
    network = FineTunedPhoneNet(config.architecture, freeze_blocks=config.freeze_blocks).eval()
    blocks = network.backbone._blocks[frozen_in_bank : config.freeze_blocks]

    def run(features: torch.Tensor) -> torch.Tensor:
        chunks = []
        for start in range(0, len(features), 256):
            x = features[start : start + 256]
            for block in blocks:
                x = block(x)
            chunks.append(x)
        return torch.cat(chunks)

    def run_per_item(features: torch.Tensor) -> torch.Tensor:
        count, per_item = features.shape[:2]
        advanced = run(features.flatten(0, 1))
        return advanced.view(count, per_item, *advanced.shape[1:])

    return dataclasses.replace(
        bank,
        views=run_per_item(bank.views),
        clean=run(bank.clean),
        crops=None if bank.crops is None else run_per_item(bank.crops),
    )


def _build_folds_and_views(samples: Sequence[Sample], config: TrainConfig, log: Log) -> tuple[list[int], ViewBank]:
    preprocess = config.preprocessing()
    images = decode_samples(samples, preprocess)
    fold_lists = grouped_kfold(samples, images, config.folds, seed=config.seed, max_distance=config.max_hash_distance)
    folds = [0] * len(samples)
    for fold, members in enumerate(fold_lists):
        for index in members:
            folds[index] = fold
    log(f"{len(samples)} pictures in {config.folds} grouped folds of sizes {[len(m) for m in fold_lists]}")
    trunk_network = FineTunedPhoneNet(config.architecture, freeze_blocks=config.freeze_blocks)
    bank = build_view_bank(
        trunk_network,
        samples,
        images,
        folds,
        preprocess=preprocess,
        augment=config.augment,
        views_per_image=config.views_per_image,
        composites_per_fold=config.composites_per_fold,
        varied_composites_per_fold=config.varied_composites_per_fold,
        hand_composites_per_fold=config.hand_composites_per_fold,
        multiscale_grid=config.multiscale_grid,
        multiscale_fraction=config.multiscale_fraction,
        seed=config.seed,
        log=log,
    )
    return folds, bank


def _bank_key(samples: Sequence[Sample], config: TrainConfig) -> str:
    """Everything the cached views depend on, hashed: the pictures and the view and split settings."""
    relevant = {
        name: getattr(config, name)
        for name in (
            "architecture",
            "image_size",
            "freeze_blocks",
            "views_per_image",
            "composites_per_fold",
            "folds",
            "seed",
            "max_hash_distance",
        )
    }
    # Added after v1: only in the key when used, so caches made without them keep their names.
    for name in ("varied_composites_per_fold", "hand_composites_per_fold", "multiscale_grid"):
        if getattr(config, name):
            relevant[name] = getattr(config, name)
    if config.multiscale_grid:
        relevant["multiscale_fraction"] = config.multiscale_fraction
    relevant["augment"] = dataclasses.asdict(config.augment)
    relevant["samples"] = [[s.path, s.label, s.group, os.path.getsize(s.path)] for s in samples]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _predictions(
    bank: ViewBank,
    samples: Sequence[Sample],
    rotations: Sequence[RotationResult],
    data_root: str | os.PathLike[str] | None,
) -> list[dict[str, Any]]:
    """Every held-out item's calibrated probability, for the report's plots and for looking at the errors."""
    rows = []
    for rotation in rotations:
        for index, probability in zip(
            rotation.test_indices.tolist(), rotation.test_probabilities.tolist(), strict=True
        ):
            sample_index = bank.sample_indices[index]
            rows.append(
                {
                    "kind": bank.kinds[index],
                    "source": bank.sources[index],
                    "path": None if sample_index is None else _relative(samples[sample_index].path, data_root),
                    "target": int(bank.targets[index]),
                    "probability": round(probability, 6),
                    "threshold": round(rotation.threshold, 6),
                    "fold": rotation.test_fold,
                }
            )
    return rows


def _relative(path: str, root: str | os.PathLike[str] | None) -> str:
    if root is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return path


def _write_model(
    out_dir: Path,
    version: str,
    samples: Sequence[Sample],
    folds: Sequence[int],
    shipped: RotationResult,
    config: TrainConfig,
    metrics: dict[str, Any],
    predictions: dict[str, list[dict[str, Any]]],
    data_root: str | os.PathLike[str] | None,
) -> ModelManifest:
    split = {
        "test_fold": shipped.test_fold,
        "val_fold": shipped.val_fold,
        "folds": config.folds,
        "pictures": [
            {
                "path": _relative(s.path, data_root),
                "label": s.label,
                "fold": f,
                "part": "test" if f == shipped.test_fold else "validation" if f == shipped.val_fold else "train",
            }
            for s, f in zip(samples, folds, strict=True)
        ],
    }
    files = {
        WEIGHTS_FILE: write_state_dict(out_dir, WEIGHTS_FILE, copy.deepcopy(shipped.state)),
        "split.json": write_json_file(out_dir, "split.json", split),
        "training.json": write_json_file(
            out_dir, "training.json", {"config": config.to_dict(), "epochs": shipped.epochs}
        ),
        PREDICTIONS_FILE: write_json_file(out_dir, PREDICTIONS_FILE, predictions),
    }
    manifest = ModelManifest(
        version=version,
        kind=KIND,
        architecture=config.architecture,
        preprocessing=config.preprocessing(),
        threshold=round(shipped.threshold, 6),
        temperature=round(shipped.temperature, 6),
        files=files,
        metrics=metrics,
        options={
            "freeze_blocks": config.freeze_blocks,
            "head_dropout": config.head_dropout,
            "base_weights_sha256": sha256_file(imagenet_weights_path(config.architecture)),
            "multiscale_grid": config.multiscale_grid,
            "multiscale_fraction": config.multiscale_fraction,
        },
    )
    write_model_manifest(out_dir, manifest)
    return manifest
