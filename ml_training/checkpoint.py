"""Writing a model directory that :func:`inference.load` accepts, without ever exposing half of it.

Each file is written under a temporary name, checksummed, then renamed into place; the manifest, which names
every file with its sha256, is written last and atomically. A reader that sees the new manifest therefore finds
every file it lists complete, and a crash mid-way leaves at most stray temporary files, never a loadable
model with a torn checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from inference.manifest import ModelManifest, sha256_file, write_manifest


def write_file_atomically(directory: Path, name: str, write: Callable[[Path], object]) -> str:
    """Have ``write`` fill a temporary file, fsync it, rename it to ``name`` and return its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        write(temporary_path)
        # mkstemp creates 0600; model files are read by other processes (web app, worker) and other users.
        os.chmod(temporary_path, 0o644)
        with open(temporary_path, "rb") as file:
            os.fsync(file.fileno())
        digest = sha256_file(temporary_path)
        os.replace(temporary_path, directory / name)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise
    return digest


def write_json_file(directory: Path, name: str, data: Any) -> str:
    return write_file_atomically(
        directory, name, lambda path: path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    )


def write_state_dict(directory: Path, name: str, state: dict[str, torch.Tensor]) -> str:
    return write_file_atomically(directory, name, lambda path: torch.save(state, path))


def write_model_manifest(directory: Path, manifest: ModelManifest) -> Path:
    """Last step of writing a model: only now does the directory become a loadable model version."""
    return write_manifest(directory, manifest)
