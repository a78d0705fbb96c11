"""Serving on a small shared machine: process-wide torch settings (for the torch paths), and the batch API."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from PIL import Image

from inference.images import DEFAULT_MAX_PIXELS, ImageError, ImageSource, open_image
from inference.prediction import Prediction

if TYPE_CHECKING:
    from inference.contract import Classifier

THREADS_ENV = "PHONECHECK_TORCH_THREADS"


def default_threads() -> int:
    """Engine threads when the caller names none: ``$PHONECHECK_TORCH_THREADS`` or 2."""
    return int(os.environ.get(THREADS_ENV, "2"))


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads once per process and return the number used.

    Default: ``$PHONECHECK_TORCH_THREADS`` or 2. The box has two cores shared with the web server, the
    database and the broker; more threads than cores only adds contention.
    """
    import torch  # only processes that run torch models call this

    count = threads or default_threads()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def predict_files(
    classifier: Classifier,
    sources: Sequence[ImageSource],
    *,
    workers: int = 2,
    chunk: int = 8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Prediction | ImageError]:
    """Verdicts for many pictures (paths, bytes or files), in order; an unreadable one gives its ``ImageError``.

    The batch API: ``workers`` threads each decode and classify a chunk of ``chunk`` pictures at a time. Pillow,
    torch and ONNX Runtime release the GIL, so on two cores decoding one chunk overlaps the model on another,
    which a single thread cannot do (measured in ``benchmarks/run.py``: ``batch_images_per_s``).
    """
    draft = classifier.manifest.preprocessing.draft_size
    starts = range(0, len(sources), max(1, chunk))

    def classify_chunk(start: int) -> list[Prediction | ImageError]:
        decoded: list[Image.Image | ImageError] = []
        for source in sources[start : start + chunk]:
            try:
                decoded.append(open_image(source, max_pixels=max_pixels, draft_size=draft))
            except ImageError as error:
                decoded.append(error)
            except OSError as error:
                decoded.append(ImageError(f"cannot read file: {error.strerror or error}"))
        predictions = iter(classifier.predict([item for item in decoded if isinstance(item, Image.Image)]))
        return [item if isinstance(item, ImageError) else next(predictions) for item in decoded]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [result for results in pool.map(classify_chunk, starts) for result in results]
