"""The small JSON file that describes one model version on disk.

A model directory holds ``manifest.json`` plus the files it names. The manifest is the only thing a loader
reads to know what to build, how to preprocess, which threshold to apply and which checksums to verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.preprocessing import PreprocessConfig
from inference.second_opinion import SecondOpinionSpec

MANIFEST_NAME = "manifest.json"


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
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        try:
            return cls(
                version=str(data["version"]),
                kind=str(data["kind"]),
                architecture=str(data.get("architecture", "efficientnet-lite0")),
                preprocessing=PreprocessConfig.from_dict(data.get("preprocessing", {})),
                threshold=float(data.get("threshold", 0.5)),
                temperature=float(data.get("temperature", 1.0)),
                files={str(k): str(v) for k, v in data.get("files", {}).items()},
                metrics=dict(data.get("metrics", {})),
                options=dict(data.get("options", {})),
                unsure_band=_band(data.get("unsure_band")),
                second_opinion=_second_opinion(data.get("second_opinion")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelLoadError(f"Malformed model manifest: {error}") from error


def _band(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    low, high = (float(item) for item in value)
    if not 0 <= low <= high <= 1:
        raise ValueError(f"unsure_band must be two probabilities, low <= high, not {value!r}")
    return low, high


def _second_opinion(value: Any) -> SecondOpinionSpec | None:
    return None if value is None else SecondOpinionSpec.from_dict(dict(value))


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: str | os.PathLike[str]) -> ModelManifest:
    """Read and parse ``manifest.json`` from a model directory."""
    path = Path(model_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ModelLoadError(f"No {MANIFEST_NAME} in {model_dir}.") from error
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path} is not valid JSON: {error}") from error
    return ModelManifest.from_dict(data)


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
    os.replace(handle.name, target)


def write_manifest(model_dir: str | os.PathLike[str], manifest: ModelManifest) -> Path:
    path = Path(model_dir) / MANIFEST_NAME
    write_json_atomically(path, manifest.to_dict())
    return path


def manifest_checksum(model_dir: str | os.PathLike[str]) -> str:
    """One checksum for a whole model version: its manifest (which itself pins every file's checksum)."""
    return sha256_file(Path(model_dir) / MANIFEST_NAME)
