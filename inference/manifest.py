"""The small JSON file that describes one model version on disk.

A model directory holds ``manifest.json`` plus the files it names. The manifest is the only thing a loader
reads to know what to build, how to preprocess, which threshold to apply and which checksums to verify.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.preprocessing import RESAMPLING as INTERPOLATIONS  # the names preprocessing knows how to resize with
from inference.preprocessing import PreprocessConfig
from inference.second_opinion import SecondOpinionSpec

MANIFEST_NAME = "manifest.json"
# What a model version cannot be run without. A default here would change its verdicts without a word: a 448-px scene
# model whose manifest lost ``preprocessing`` was fed 224-px pictures. Readers that only want a registered version's
# verdict rule (its threshold and band) read older, shorter manifests too.
KEYS_TO_RUN = ("version", "kind", "preprocessing", "threshold", "temperature", "files")
PREPROCESSING_KEYS_TO_RUN = ("image_size", "resize_size", "center_crop", "mean", "std", "interpolation")


class ModelLoadError(RuntimeError):
    """A model directory is missing, incomplete, corrupt or not what its manifest says."""


@dataclass(frozen=True)
class ModelManifest:
    """What a model version is and how to run it."""

    version: str
    kind: str  # "imagenet-zero-shot" or "fine-tuned"
    architecture: str = "efficientnet-lite0"
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    threshold: float = 0.5
    temperature: float = 1.0
    # Relative file name -> sha256 hex digest; every file is verified before it is loaded.
    files: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # Calibrated probabilities (low, high) around the threshold where this model's validation verdicts were
    # unreliable: shown as "unsure" and reviewed first. None for models trained before it was measured.
    unsure_band: tuple[float, float] | None = None
    # Another model version asked about the pictures this one calls "not a phone" (inference/second_opinion.py);
    # None for a model that decides alone.
    second_opinion: SecondOpinionSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self._fields_dict()
        if self.unsure_band is not None:
            data["unsure_band"] = list(self.unsure_band)
        if self.second_opinion is not None:
            data["second_opinion"] = self.second_opinion.to_dict()
        return data

    def _fields_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "architecture": self.architecture,
            "preprocessing": self.preprocessing.to_dict(),
            "threshold": self.threshold,
            "temperature": self.temperature,
            "files": dict(self.files),
            "metrics": self.metrics,
            "options": self.options,
        }

    @classmethod
    def from_dict(cls, data: Any, *, to_run: bool = False) -> ModelManifest:
        """The manifest ``data`` (parsed JSON) describes; :class:`ModelLoadError` naming the field for anything else.

        Manifests are copied between machines and sometimes edited by hand, and a value that merely converted used
        to load and then mislead or fail on every picture: a temperature of 0 gave probability 1.0, a standard
        deviation of 0 gave NaN, a misspelt interpolation raised in every prediction. ``to_run``: also require what
        running the model needs (:data:`KEYS_TO_RUN`) instead of assuming defaults.
        """
        try:
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, not {type(data).__name__}")
            if to_run:
                _require(data, KEYS_TO_RUN, "")
            return cls(
                version=_text(data, "version"),
                kind=_text(data, "kind"),
                architecture=_text(data, "architecture", "efficientnet-lite0"),
                preprocessing=_preprocessing(data.get("preprocessing", {}), to_run=to_run),
                threshold=_probability(data.get("threshold", 0.5), "threshold"),
                temperature=_positive(data.get("temperature", 1.0), "temperature"),
                files=_files(data.get("files", {})),
                metrics=_object(data.get("metrics", {}), "metrics"),
                options=_object(data.get("options", {}), "options"),
                unsure_band=_band(data.get("unsure_band")),
                second_opinion=_second_opinion(data.get("second_opinion")),
            )
        except ModelLoadError:
            raise
        except Exception as error:  # the parse boundary: whatever a damaged file holds becomes a readable refusal
            raise ModelLoadError(f"Malformed model manifest: {error}") from error


def _require(data: dict[str, Any], keys: tuple[str, ...], prefix: str) -> None:
    missing = [f"{prefix}{key}" for key in keys if key not in data]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing")


def _text(data: dict[str, Any], name: str, default: str | None = None) -> str:
    if name not in data and default is None:
        raise ValueError(f"{name} missing")
    value = data.get(name, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    """A finite JSON number (a string or a boolean that would convert is refused: it is not what was meant)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _probability(value: Any, name: str) -> float:
    number = _number(value, name)
    if not 0 <= number <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], not {value!r}")
    return number


def _positive(value: Any, name: str) -> float:
    number = _number(value, name)
    if not number > 0:
        raise ValueError(f"{name} must be greater than 0, not {value!r}")
    return number


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number, not {value!r}")
    return int(value)


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, not {value!r}")
    return dict(value)


def _files(value: Any) -> dict[str, str]:
    files = _object(value, "files")
    for name, digest in files.items():
        if not isinstance(digest, str) or not digest:
            raise ValueError(f"files.{name} must be a sha256 hex digest, not {digest!r}")
    return files


def _preprocessing(value: Any, *, to_run: bool) -> PreprocessConfig:
    """What :class:`PreprocessConfig` would take as it is and then fail or mislead on at the first picture."""
    data = _object(value, "preprocessing")
    if to_run:
        _require(data, PREPROCESSING_KEYS_TO_RUN, "preprocessing.")
    for name in ("image_size", "resize_size"):
        if name in data:
            _positive_int(data[name], f"preprocessing.{name}")
    if not isinstance(data.get("center_crop", False), bool):
        raise ValueError(f"preprocessing.center_crop must be true or false, not {data['center_crop']!r}")
    for name in ("mean", "std"):
        if name in data:
            triple = data[name]
            if not isinstance(triple, list | tuple) or len(triple) != 3:
                raise ValueError(f"preprocessing.{name} must be three numbers (R, G, B), not {triple!r}")
            check = _positive if name == "std" else _number
            for item in triple:
                check(item, f"preprocessing.{name}")
    interpolation = data.get("interpolation", "bilinear")
    if not isinstance(interpolation, str) or interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"preprocessing.interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}"
        )
    _object(data.get("extra", {}), "preprocessing.extra")
    return PreprocessConfig.from_dict(data)


def _band(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"unsure_band must be two probabilities, low <= high, not {value!r}")
    low, high = (_probability(item, "unsure_band") for item in value)
    if not low <= high:
        raise ValueError(f"unsure_band must be two probabilities, low <= high, not {value!r}")
    return low, high


def _second_opinion(value: Any) -> SecondOpinionSpec | None:
    return None if value is None else SecondOpinionSpec.from_dict(_object(value, "second_opinion"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: str | os.PathLike[str], *, to_run: bool = False) -> ModelManifest:
    """Read and check ``manifest.json`` from a model directory: :class:`ModelLoadError` for a missing, unreadable or
    malformed one, never another exception. ``to_run``: as :meth:`ModelManifest.from_dict`."""
    path = Path(model_dir) / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise ModelLoadError(f"No {MANIFEST_NAME} in {model_dir}.") from error
    except OSError as error:
        raise ModelLoadError(f"{path} cannot be read: {error}") from error
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, or nested deeper than the parser goes
        raise ModelLoadError(f"{path} is not valid JSON: {error}") from error
    try:
        return ModelManifest.from_dict(data, to_run=to_run)
    except ModelLoadError as error:
        raise ModelLoadError(f"{path}: {error}") from error


def verify_files(model_dir: str | os.PathLike[str], manifest: ModelManifest) -> None:
    """Refuse a model whose files are missing or differ from the checksums in its manifest."""
    for name, expected in manifest.files.items():
        path = Path(model_dir) / name
        if not path.is_file():
            raise ModelLoadError(f"Model {manifest.version}: file {name} is missing.")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelLoadError(
                f"Model {manifest.version}: {name} is corrupt or was replaced (sha256 {actual[:12]}…, "
                f"manifest says {expected[:12]}…)."
            )


def write_json_atomically(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON so that readers see either the old file or the whole new one, never half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.", delete=False) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    # NamedTemporaryFile makes it 0600: a retrained version's manifest was unreadable to workers running as
    # another user than the retrain (its other files are 0644 too, ml_training/checkpoint.py).
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, target)


def write_manifest(model_dir: str | os.PathLike[str], manifest: ModelManifest) -> Path:
    path = Path(model_dir) / MANIFEST_NAME
    write_json_atomically(path, manifest.to_dict())
    return path


def manifest_checksum(model_dir: str | os.PathLike[str]) -> str:
    """One checksum for a whole model version: its manifest (which itself pins every file's checksum)."""
    return sha256_file(Path(model_dir) / MANIFEST_NAME)
