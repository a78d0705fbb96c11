"""``python -m ml_training second-opinion``: a cross-validated scene model plus a whole-picture model's second opinion.

The new version is the base scene model (its weights, threshold and calibration unchanged) whose manifest names
the member (``inference/second_opinion.py``): wherever the base said "not a phone" with a probability of at least
``--consulted-from``, the member's probability replaces the base's if it reaches ``--at-least``. Its figures are
out of fold like the base's: the base's own out-of-fold probabilities (``predictions.json``), and the member's
out-of-fold probability for every picture it was trained on (its ``predictions.json``, cross-validation part) or
its plain probability for pictures it never saw (scored here, only where it is consulted). A picture the member
trained on without an out-of-fold probability is refused: its score would flatter the figures.

Box figures are the base's: the member places no box (a phone it finds carries the base's best box); if it turns
any scene picture (the only ones with known phone positions) into a phone, the box figures would change, and the
command stops rather than guess them.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.images import open_image
from inference.loader import load
from inference.manifest import ModelManifest, manifest_checksum, read_manifest, sha256_file, verify_files
from inference.second_opinion import (
    DEFAULT_AT_LEAST,
    DEFAULT_CONSULTED_FROM,
    SecondOpinionSpec,
    consulted_indices,
    settled,
)
from ml_training.checkpoint import write_json_file, write_model_manifest
from ml_training.scene.decision import unsure_band
from ml_training.scene.figures import figures_by_column

PREDICTIONS = "predictions.json"
# Files of the base version the new one keeps as they are (the weights, its folds, how it was trained).
KEPT_FILES = ("weights.pt", "split.json", "training.json")
# Pictures the member scores at once: its engine's own batch limit keeps memory flat anyway.
SCORING_BATCH = 32


def picture_key(path: str) -> str:
    """A picture's label folder and file name: how the base's and the member's prediction files name the same
    picture (their paths start from different folders; the shared sets' file names carry a content hash)."""
    parts = Path(path).parts
    return "/".join(parts[-2:])


def member_out_of_fold(member_dir: Path) -> tuple[dict[str, float], set[str]]:
    """The member's out-of-fold probability per picture (cross-validation part of its ``predictions.json``), and
    every picture it was trained or tested on (its ``split.json``); both empty for a member trained on none of
    these (the zero-shot model)."""
    predictions_file, split_file = member_dir / PREDICTIONS, member_dir / "split.json"
    out_of_fold: dict[str, float] = {}
    if predictions_file.is_file():
        predictions = json.loads(predictions_file.read_text())
        rows = predictions["cross_validation"] if isinstance(predictions, dict) else predictions
        out_of_fold = {
            picture_key(row["path"]): float(row["probability"]) for row in rows if row.get("kind", "real") == "real"
        }
    seen = set(out_of_fold)
    if split_file.is_file():
        seen |= {picture_key(row["path"]) for row in json.loads(split_file.read_text()).get("pictures", [])}
    return out_of_fold, seen


def spec_for(
    member_dir: Path, *, at_least: float = DEFAULT_AT_LEAST, consulted_from: float = DEFAULT_CONSULTED_FROM
) -> SecondOpinionSpec:
    """The manifest entry naming ``member_dir`` as it is now (its manifest's checksum pinned)."""
    return SecondOpinionSpec(
        model=member_dir.name,
        manifest_sha256=manifest_checksum(member_dir),
        at_least=at_least,
        consulted_from=consulted_from,
    )


def member_answers(
    paths: Sequence[str],
    probabilities: Sequence[float],
    *,
    spec: SecondOpinionSpec,
    member_dir: Path,
    threshold: float,
    engine: str | None = None,
    cache_dir: Path | None = None,
) -> dict[int, float]:
    """The member's honest probability for every picture it is consulted on (index -> probability): out of fold
    where it trained on the picture, scored here where it never saw it. Raises ``ValueError`` for a picture it
    trained on without an out-of-fold score."""
    scores, seen = member_out_of_fold(member_dir)
    answers: dict[int, float] = {}
    unseen = []
    for index in consulted_indices(probabilities, spec, threshold):
        key = picture_key(paths[index])
        if key in scores:
            answers[index] = scores[key]
        else:
            unseen.append(index)
    leaked = [paths[index] for index in unseen if picture_key(paths[index]) in seen]
    if leaked:
        raise ValueError(f"{member_dir.name} trained on {len(leaked)} of these pictures without out-of-fold scores.")
    if unseen:
        member = load(member_dir, engine=engine, cache_dir=cache_dir)  # the serving cache a retrain is told of
        for start in range(0, len(unseen), SCORING_BATCH):
            part = unseen[start : start + SCORING_BATCH]
            for index, answer in zip(
                part, member.phone_probabilities([open_image(paths[i]) for i in part]), strict=True
            ):
                answers[index] = answer
    return answers


def compose(
    base_dir: Path,
    member_dir: Path,
    out_dir: Path,
    *,
    version: str,
    spec_at_least: float,
    spec_consulted_from: float,
    engine: str | None = None,
) -> dict[str, Any]:
    """Write the new version to ``out_dir`` and return its out-of-fold figures (see the module docstring)."""
    base = read_manifest(base_dir)
    verify_files(base_dir, base)
    if base.second_opinion is not None:
        raise ValueError(f"{base.version} already has a second opinion ({base.second_opinion.model}).")
    if member_dir.parent.resolve() != out_dir.parent.resolve():
        raise ValueError(f"The member must sit beside the new version: {member_dir.parent} is not {out_dir.parent}.")
    spec = spec_for(member_dir, at_least=spec_at_least, consulted_from=spec_consulted_from)
    rows = json.loads((base_dir / PREDICTIONS).read_text())
    by_id = [row["path"] for row in rows if str(row["path"]).startswith("upload:")]
    if by_id:
        # A retrained version's records name reviewed uploads by id, never by file (phoneapp/services/retraining.py).
        raise ValueError(
            f"{base.version} was trained on reviewed uploads, which its records name by id ({by_id[0]}), not by "
            "file: the member cannot be asked about them afterwards. Retrain instead (a retrain keeps the active "
            "model's second opinion)."
        )
    probabilities = [float(row["probability"]) for row in rows]
    answers = member_answers(
        [row["path"] for row in rows],
        probabilities,
        spec=spec,
        member_dir=member_dir,
        threshold=base.threshold,
        engine=engine,
    )
    revised = settled(probabilities, answers, spec)
    flipped_scenes = sum(
        bool(rows[index].get("scene")) and revised[index] >= base.threshold > probabilities[index] for index in answers
    )
    if flipped_scenes:
        raise ValueError(
            f"The second opinion turns {flipped_scenes} scene pictures into phones: their box figures would change, "
            "and this command keeps the base's. Train with --second-opinion instead."
        )
    revised_rows = []
    for index, row in enumerate(rows):
        revised_row = {**row, "probability": round(float(revised[index]), 6)}
        if index in answers:
            revised_row["member_probability"] = round(answers[index], 6)
        revised_rows.append(revised_row)
    figures = _figures(revised_rows, base, base.threshold)
    _write(base_dir, out_dir, base, spec, version=version, rows=revised_rows, figures=figures, consulted=len(answers))
    return figures


def _figures(rows: Sequence[dict[str, Any]], base: ModelManifest, threshold: float) -> dict[str, Any]:
    probabilities = np.array([row["probability"] for row in rows], dtype=np.float64)
    figures: dict[str, Any] = figures_by_column(
        targets=[int(row["label"] == "phone") for row in rows],
        scenes=[bool(row.get("scene")) for row in rows],
        sources=[row["source"] for row in rows],
        probabilities=probabilities,
        threshold=threshold,
    )
    figures["boxes"] = base.metrics["cross_validation"]["boxes"]
    return figures


def _write(
    base_dir: Path,
    out_dir: Path,
    base: ModelManifest,
    spec: SecondOpinionSpec,
    *,
    version: str,
    rows: list[dict[str, Any]],
    figures: dict[str, Any],
    consulted: int,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=False)
    files = {}
    for name in KEPT_FILES:
        shutil.copyfile(base_dir / name, out_dir / name)
        files[name] = sha256_file(out_dir / name)
    files[PREDICTIONS] = write_json_file(out_dir, PREDICTIONS, rows)
    files["second_opinion.json"] = write_json_file(
        out_dir,
        "second_opinion.json",
        {"base": base.version, "base_manifest_sha256": manifest_checksum(base_dir), "consulted": consulted},
    )
    probabilities = np.array([row["probability"] for row in rows])
    targets = np.array([int(row["label"] == "phone") for row in rows])
    manifest = ModelManifest(
        version=version,
        kind=base.kind,
        architecture=base.architecture,
        preprocessing=base.preprocessing,
        threshold=base.threshold,
        temperature=base.temperature,
        files=files,
        metrics={**base.metrics, "cross_validation": figures},
        options=base.options,
        unsure_band=unsure_band(probabilities, targets, base.threshold),
        second_opinion=spec,
    )
    write_model_manifest(out_dir, manifest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", type=Path, help="the cross-validated scene model directory")
    parser.add_argument("member", type=Path, help="the whole-picture model directory, beside the new one")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory (must not exist)")
    parser.add_argument("--version", default=None, help="the new version's name (default: the --out folder's)")
    parser.add_argument(
        "--at-least", type=float, default=DEFAULT_AT_LEAST, help="the member's probability that makes a phone"
    )
    parser.add_argument(
        "--consulted-from",
        type=float,
        default=DEFAULT_CONSULTED_FROM,
        help="the base's lowest probability at which the member is asked",
    )
    parser.add_argument("--engine", choices=("torch", "onnxruntime"), default=None, help="to score unseen pictures")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        figures = compose(
            args.base,
            args.member,
            args.out,
            version=args.version or args.out.name,
            spec_at_least=args.at_least,
            spec_consulted_from=args.consulted_from,
            engine=args.engine,
        )
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        parser.error(str(error))
    for name, values in figures.items():
        print(f"{name:<28} {json.dumps(values)}")
    return 0
