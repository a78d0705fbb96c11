""" "Where is the phone" drawn as a see-through overlay: an evidence map turned into an RGBA picture.

:func:`heatmap_overlay` lays a classifier's evidence map (a small (H, W) grid, positive where the picture pushed the
verdict towards "phone") over the region the model saw, with the upload's aspect ratio, transparent where there is
no evidence, so the web page can stack it over the photo and switch it on and off. NumPy and Pillow only: the
serving worker draws overlays without torch. How the evidence is found is :mod:`inference.torch_evidence`'s business
(or the exported graph's, see :mod:`inference.onnx_engine`). Knows nothing of Django.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from inference.preprocessing import PreprocessConfig

if TYPE_CHECKING:
    from inference.manifest import ModelManifest

# The evidence is a 7x7 grid, and the page stretches the overlay over the photo (the browser smooths it), so a
# small overlay shows the same thing: drawing and PNG-encoding it at 640 px cost 56 ms of CPU per upload (a 512 px
# photo), three times the verdict itself; at 160 px it is 5 ms and 17 kB.
OVERLAY_MAX_SIDE = 160


class ExplainsVerdicts(Protocol):
    """What :func:`heatmap_png` needs of a classifier: its manifest and an evidence map for one picture."""

    manifest: ModelManifest

    def evidence_map(self, image: Image.Image) -> ArrayLike: ...


def model_input_box(width: int, height: int, config: PreprocessConfig) -> tuple[int, int, int, int]:
    """The part of a ``width`` x ``height`` picture the model actually sees, as (left, top, right, bottom).

    With centre-cropping the edges are cut away, so the evidence map must be laid over the centre only.
    """
    if not config.center_crop:
        return (0, 0, width, height)
    side = min(width, height) * config.image_size / config.resize_size
    crop_w, crop_h = min(width, side), min(height, side)
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return (round(left), round(top), round(left + crop_w), round(top + crop_h))


def normalize_evidence(evidence: ArrayLike) -> np.ndarray:
    """Scale a raw map to [0, 1]: negative evidence (pointing at "not a phone") counts as none.

    The strongest cell becomes 1, so the overlay shows where the evidence is relative to the rest of the
    picture; an all-negative map (no phone evidence anywhere) stays all zero.
    """
    positive = np.clip(np.asarray(evidence, dtype=np.float32), 0, None)  # a torch tensor converts too
    peak = float(positive.max()) if positive.size else 0.0
    if peak <= 0 or not np.isfinite(peak):
        return np.zeros(positive.shape, dtype=np.float32)
    return positive / np.float32(peak)


# Colour ramp from faint yellow to deep red; alpha grows with the evidence, so weak cells stay see-through.
_RAMP = np.array([(255, 237, 160), (254, 178, 76), (240, 59, 32), (189, 0, 38)], dtype=np.float32)


def _colorize(values: np.ndarray) -> np.ndarray:
    positions = values * (len(_RAMP) - 1)
    low = np.clip(np.floor(positions).astype(int), 0, len(_RAMP) - 2)
    fraction = (positions - low)[..., None]
    rgb = _RAMP[low] * (1 - fraction) + _RAMP[low + 1] * fraction
    alpha = np.clip((values - 0.15) / 0.85, 0, 1) ** 0.8 * 200
    return np.dstack([rgb, alpha]).round().astype(np.uint8)


def heatmap_overlay(
    evidence: ArrayLike,
    *,
    image_size: tuple[int, int],
    config: PreprocessConfig,
    max_side: int = OVERLAY_MAX_SIDE,
) -> Image.Image:
    """An RGBA overlay with the picture's aspect ratio: the evidence map smoothly upsampled onto the region the
    model saw, transparent elsewhere and where the evidence is weak."""
    width, height = image_size
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top, right, bottom = (round(edge * scale) for edge in model_input_box(width, height, config))
    box_w, box_h = max(1, right - left), max(1, bottom - top)
    # Pillow resizes float ("F") pictures too: a smooth bicubic upsampling of the coarse map, no torch needed.
    values = Image.fromarray(normalize_evidence(evidence), "F").resize((box_w, box_h), Image.Resampling.BICUBIC)
    region = _colorize(np.clip(np.asarray(values), 0, 1))
    overlay = Image.new("RGBA", (out_w, out_h), (0, 0, 0, 0))
    overlay.paste(Image.fromarray(region, "RGBA"), (left, top))
    return overlay


def heatmap_png(classifier: ExplainsVerdicts, image: Image.Image, *, max_side: int = OVERLAY_MAX_SIDE) -> bytes:
    """The overlay for ``image`` as PNG bytes, using the classifier's own evidence map."""
    return overlay_png(
        classifier.evidence_map(image),
        image_size=image.size,
        config=classifier.manifest.preprocessing,
        max_side=max_side,
    )


def overlay_png(
    evidence: ArrayLike, *, image_size: tuple[int, int], config: PreprocessConfig, max_side: int = OVERLAY_MAX_SIDE
) -> bytes:
    """:func:`heatmap_overlay` as PNG bytes, for an evidence map computed earlier (e.g. with the verdict)."""
    overlay = heatmap_overlay(evidence, image_size=image_size, config=config, max_side=max_side)
    buffer = io.BytesIO()
    overlay.save(buffer, "PNG")  # optimize=True costs several times the encode for a few per cent
    return buffer.getvalue()
