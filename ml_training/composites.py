"""Pictures of small phones in scenes, made by compositing: the case no picture set here covers.

Phones are cut out of product photos with plain backgrounds and pasted small (2-10% of the frame) into
not_phone scenes with random scale, rotation, blur and lighting. Look-alike "distractor" composites paste a
not_phone object (or a phone-shaped patch of another scene) the same way and stay not_phone, so that "something
was pasted here" is no evidence of a phone.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

# Composites are rendered at this longest side: enough detail for a 224-pixel model input and for crops.
COMPOSITE_SIDE = 448
# Cut-outs are kept at this longest side (a pasted phone covers at most ~10% of a 448-pixel scene).
CUTOUT_SIDE = 256
MASK_SIDE = 160


@dataclass(frozen=True)
class CompositeConfig:
    """How small, tilted, blurred and lit the pasted object may be."""

    min_area: float = 0.02
    max_area: float = 0.10
    max_rotation: float = 90.0
    max_blur: float = 1.5
    brightness: tuple[float, float] = (0.55, 1.15)
    contrast: tuple[float, float] = (0.7, 1.1)
    # How far the object's colours are pulled towards the scene's average colour (ambient light).
    max_tint: float = 0.25
    jpeg_quality: tuple[int, int] = (60, 95)
    # Variety added for v2 (0 keeps v1's composites exactly, random draws included):
    # share of objects narrowed to 20-100% of their width (seen edge-on or in perspective),
    squash_probability: float = 0.0
    # share of objects partly hidden: skin-toned "fingers" over an edge, or one end cut off by the frame of view,
    occlusion_probability: float = 0.0
    # share of objects darkened further, down to ``dark_brightness`` (a phone in shadow or in a dim room).
    dark_probability: float = 0.0
    dark_brightness: float = 0.25


DEFAULT_COMPOSITES = CompositeConfig()
# The varied composites: darker, edge-on, partly hidden by fingers or cut off.
VARIED_COMPOSITES = CompositeConfig(squash_probability=0.3, occlusion_probability=0.4, dark_probability=0.25)
# Pictures of hands holding a phone (or a look-alike) pasted as a small framed patch: the whole patch covers
# 3-15% of the frame, so the phone itself covers roughly 1-8%.
HAND_COMPOSITES = CompositeConfig(min_area=0.03, max_area=0.15, max_rotation=30.0, dark_probability=0.2)

# Skin tones (RGB) for the fingers drawn over an object's edge.
SKIN_TONES = ((241, 194, 167), (224, 172, 135), (198, 134, 96), (160, 105, 72), (111, 70, 48), (79, 50, 35))


def _border_pixels(array: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate(
        [
            array[:width].reshape(-1, 3),
            array[-width:].reshape(-1, 3),
            array[:, :width].reshape(-1, 3),
            array[:, -width:].reshape(-1, 3),
        ]
    )


def cut_out(
    image: Image.Image, *, tolerance: float = 28.0, min_fraction: float = 0.04, max_fraction: float = 0.85
) -> Image.Image | None:
    """The object of a picture with a plain background, as RGBA cropped to it; ``None`` if there is no such object.

    The background is whatever is connected to the border and close to the border's median colour, so a white
    screen inside a phone's outline stays part of the phone.
    """
    picture = image.convert("RGB")
    picture.thumbnail((CUTOUT_SIDE, CUTOUT_SIDE))
    # The mask is found on a smaller copy: Pillow's flood fill runs in Python, and a pasted phone is at most
    # ~150 pixels tall anyway; the mask is scaled back up with smooth edges.
    small = picture.copy()
    small.thumbnail((MASK_SIDE, MASK_SIDE))
    array = np.asarray(small, dtype=np.float32)
    border = _border_pixels(array, 2)
    background = np.median(border, axis=0)
    if np.mean(np.linalg.norm(border - background, axis=1) < tolerance) < 0.9:
        return None
    near_background = np.linalg.norm(array - background, axis=2) < tolerance
    # Flood-fill the background from a one-pixel frame so every border-connected plain region is found at once.
    # (copy: an image made from a numpy array may share its read-only memory, and floodfill would do nothing)
    mask = Image.fromarray(np.pad(near_background, 1, constant_values=True).astype(np.uint8) * 255).copy()
    ImageDraw.floodfill(mask, (0, 0), 128)
    foreground = np.asarray(mask)[1:-1, 1:-1] != 128
    fraction = foreground.mean()
    if not min_fraction <= fraction <= max_fraction:
        return None
    alpha = Image.fromarray(foreground.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))
    alpha = alpha.resize(picture.size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(0.8))
    box = alpha.point(lambda value: 255 if value > 127 else 0).getbbox()
    if box is None:
        return None
    picture.putalpha(alpha)
    return picture.crop(box)


def phone_shaped_patch(image: Image.Image, rng: random.Random) -> Image.Image:
    """A rounded, phone-proportioned patch of a scene: a distractor with a phone's outline but not its looks."""
    width, height = image.size
    aspect = rng.uniform(0.4, 0.6)
    patch_h = int(min(height, width / aspect) * rng.uniform(0.3, 0.8))
    patch_w = max(4, int(patch_h * aspect))
    patch_h = max(4, patch_h)
    left, top = rng.randint(0, max(0, width - patch_w)), rng.randint(0, max(0, height - patch_h))
    patch = image.convert("RGB").crop((left, top, left + patch_w, top + patch_h))
    alpha = Image.new("L", patch.size, 0)
    ImageDraw.Draw(alpha).rounded_rectangle((0, 0, patch_w - 1, patch_h - 1), radius=patch_w // 6, fill=255)
    patch.putalpha(alpha)
    return patch


def framed_patch(image: Image.Image, rng: random.Random) -> Image.Image:
    """A random central crop of a whole picture with soft rounded or oval edges, as RGBA.

    Used for pictures of hands holding a phone (phone composites) or a look-alike (distractors): pasted small,
    the hand and what it holds appear as a small part of another scene, as in a street or room photo.
    """
    picture = image.convert("RGB")
    picture.thumbnail((CUTOUT_SIDE, CUTOUT_SIDE))
    width, height = picture.size
    crop_w, crop_h = round(width * rng.uniform(0.55, 0.95)), round(height * rng.uniform(0.55, 0.95))
    left = round((width - crop_w) * rng.uniform(0.2, 0.8))
    top = round((height - crop_h) * rng.uniform(0.2, 0.8))
    patch = picture.crop((left, top, left + crop_w, top + crop_h))
    alpha = Image.new("L", patch.size, 0)
    inset = max(2, round(0.06 * min(patch.size)))
    box = (inset, inset, patch.width - 1 - inset, patch.height - 1 - inset)
    if rng.random() < 0.5:
        ImageDraw.Draw(alpha).ellipse(box, fill=255)
    else:
        ImageDraw.Draw(alpha).rounded_rectangle(box, radius=min(patch.size) // 5, fill=255)
    patch.putalpha(alpha.filter(ImageFilter.GaussianBlur(inset / 2)))
    return patch


def _squash(obj: Image.Image, rng: random.Random) -> Image.Image:
    """The object narrowed along its shorter side, as a phone seen edge-on or in perspective."""
    factor = rng.uniform(0.2, 1.0)
    if obj.width <= obj.height:
        return obj.resize((max(2, round(obj.width * factor)), obj.height), Image.Resampling.BICUBIC)
    return obj.resize((obj.width, max(2, round(obj.height * factor))), Image.Resampling.BICUBIC)


def _occlude(obj: Image.Image, rng: random.Random) -> Image.Image:
    """Part of the object hidden: skin-toned fingers over one long edge, or one end cut off."""
    width, height = obj.size
    if rng.random() < 0.4:
        keep = rng.uniform(0.55, 0.85)
        if height >= width:
            top = 0 if rng.random() < 0.5 else round(height * (1 - keep))
            return obj.crop((0, top, width, top + max(2, round(height * keep))))
        left = 0 if rng.random() < 0.5 else round(width * (1 - keep))
        return obj.crop((left, 0, left + max(2, round(width * keep)), height))
    # Fingers: ellipses reaching over the edge, drawn on a canvas with room for the part outside the object.
    margin = max(2, round(0.25 * min(width, height)))
    canvas = Image.new("RGBA", (width + 2 * margin, height + 2 * margin), (0, 0, 0, 0))
    canvas.paste(obj, (margin, margin), obj)
    draw = ImageDraw.Draw(canvas)
    tone = rng.choice(SKIN_TONES)
    shade = rng.uniform(0.8, 1.1)
    colour = (*(min(255, round(c * shade)) for c in tone), 255)
    vertical = height >= width
    length, thickness = (height, width) if vertical else (width, height)
    finger = max(2, round(length * rng.uniform(0.08, 0.14)))
    reach = round(thickness * rng.uniform(0.2, 0.45))
    side = rng.random() < 0.5
    start = rng.uniform(0.2, 0.6) * length
    for index in range(rng.randint(1, 4)):
        along = round(start + index * finger * 1.1)
        if along + finger > length:
            break
        if vertical:
            x0 = 0 if side else margin + width - reach
            box = (x0, margin + along, x0 + margin + reach, margin + along + finger)
        else:
            y0 = 0 if side else margin + height - reach
            box = (margin + along, y0, margin + along + finger, y0 + margin + reach)
        draw.ellipse(box, fill=colour)
    return canvas.crop(canvas.getbbox() or (0, 0, *canvas.size))


def paste_small(
    background: Image.Image, cutout: Image.Image, rng: random.Random, config: CompositeConfig = DEFAULT_COMPOSITES
) -> Image.Image:
    """Paste an RGBA cut-out into a scene so that it covers ``min_area``-``max_area`` of the frame."""
    scene = background.convert("RGB")
    scene.thumbnail((COMPOSITE_SIDE, COMPOSITE_SIDE))
    scene = scene.copy()
    # (each extra draw only when its probability is set, so v1's composites keep their random sequence)
    if config.squash_probability and rng.random() < config.squash_probability:
        cutout = _squash(cutout, rng)
    if config.occlusion_probability and rng.random() < config.occlusion_probability:
        cutout = _occlude(cutout, rng)
    obj = cutout.rotate(
        rng.uniform(-config.max_rotation, config.max_rotation), expand=True, resample=Image.Resampling.BICUBIC
    )
    box = obj.getbbox() or (0, 0, *obj.size)
    obj = obj.crop(box)
    area = rng.uniform(config.min_area, config.max_area) * scene.width * scene.height
    scale = (area / max(1, obj.width * obj.height)) ** 0.5
    size = (max(2, round(obj.width * scale)), max(2, round(obj.height * scale)))
    size = (min(size[0], scene.width), min(size[1], scene.height))
    obj = obj.resize(size, Image.Resampling.LANCZOS)
    rgb, alpha = obj.convert("RGB"), obj.getchannel("A")
    brightness = rng.uniform(*config.brightness)
    if config.dark_probability and rng.random() < config.dark_probability:
        brightness = rng.uniform(config.dark_brightness, config.brightness[0])
    rgb = ImageEnhance.Brightness(rgb).enhance(brightness)
    rgb = ImageEnhance.Contrast(rgb).enhance(rng.uniform(*config.contrast))
    ambient = Image.new("RGB", rgb.size, tuple(int(c) for c in np.asarray(scene).reshape(-1, 3).mean(0)))
    rgb = Image.blend(rgb, ambient, rng.uniform(0, config.max_tint))
    blur = rng.uniform(0, config.max_blur)
    if blur > 0.2:
        rgb, alpha = rgb.filter(ImageFilter.GaussianBlur(blur)), alpha.filter(ImageFilter.GaussianBlur(blur))
    position = (rng.randint(0, scene.width - size[0]), rng.randint(0, scene.height - size[1]))
    scene.paste(rgb, position, alpha)
    # Re-encoding blends the pasted edges like a camera's compression would.
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=rng.randint(*config.jpeg_quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


class CompositeFactory:
    """Makes phone and distractor composites from fixed pools of cut-outs and scenes (one split part's pictures)."""

    def __init__(
        self,
        phone_cutouts: Sequence[Image.Image],
        distractor_sources: Sequence[Image.Image],
        scenes: Sequence[Image.Image],
        config: CompositeConfig = DEFAULT_COMPOSITES,
        *,
        distractor_cutouts: Sequence[Image.Image] | None = None,
    ) -> None:
        if not phone_cutouts or not scenes:
            raise ValueError("Composites need at least one phone cut-out and one scene.")
        self.phone_cutouts = list(phone_cutouts)
        if distractor_cutouts is None:
            distractor_cutouts = plain_background_cutouts(distractor_sources)
        self.distractor_cutouts = list(distractor_cutouts)
        self.distractor_sources = list(distractor_sources) or list(scenes)
        self.scenes = list(scenes)
        self.config = config

    def phone(self, rng: random.Random) -> Image.Image:
        return paste_small(rng.choice(self.scenes), rng.choice(self.phone_cutouts), rng, self.config)

    def distractor(self, rng: random.Random) -> Image.Image:
        # Half real objects on plain backgrounds, half phone-shaped patches: neither outline nor pasting is a cue.
        if self.distractor_cutouts and rng.random() < 0.5:
            cutout = rng.choice(self.distractor_cutouts)
        else:
            cutout = phone_shaped_patch(rng.choice(self.distractor_sources), rng)
        return paste_small(rng.choice(self.scenes), cutout, rng, self.config)


def plain_background_cutouts(images: Sequence[Image.Image]) -> list[Image.Image]:
    """Cut-outs of every picture that has a plain background (product shots, or not_phone objects)."""
    return [c for c in (cut_out(image) for image in images) if c is not None]


class HandCompositeFactory:
    """Small framed patches of hands holding a phone (phone composites) or a look-alike (distractors).

    The patches come from whole pictures (no plain background needed), so the in-hand phone pictures, which the
    cut-outs cannot use, show up small in scenes; the look-alike pictures get exactly the same treatment, so a
    small hand is no evidence of a phone.
    """

    def __init__(
        self,
        phone_pictures: Sequence[Image.Image],
        look_alike_pictures: Sequence[Image.Image],
        scenes: Sequence[Image.Image],
        config: CompositeConfig = HAND_COMPOSITES,
    ) -> None:
        if not phone_pictures or not look_alike_pictures or not scenes:
            raise ValueError("Hand composites need phone pictures, look-alike pictures and scenes.")
        self.phone_pictures, self.look_alikes = list(phone_pictures), list(look_alike_pictures)
        self.scenes = list(scenes)
        self.config = config

    def phone(self, rng: random.Random) -> Image.Image:
        patch = framed_patch(rng.choice(self.phone_pictures), rng)
        return paste_small(rng.choice(self.scenes), patch, rng, self.config)

    def distractor(self, rng: random.Random) -> Image.Image:
        patch = framed_patch(rng.choice(self.look_alikes), rng)
        return paste_small(rng.choice(self.scenes), patch, rng, self.config)
