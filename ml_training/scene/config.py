"""The scene model's training recipe: every knob, what it means, and the values it may take.

Three frozen dataclasses (views, optimisation, cross-validation and decision) make one :class:`SceneRecipe`.
Each field carries its help text and its rule in ``metadata``; the rule is checked when the dataclass is built,
so a bad value raises :class:`ValueError` naming the knob before a single picture is decoded. The command line
(``python -m ml_training train``) is generated from these fields, so ``--help`` and the code cannot disagree,
and :func:`recipe_from_flat` maps the same flat names (``image_size``, ``epochs``, ...) for other callers.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.preprocessing import PreprocessConfig
from inference.scene_network import MAX_TRAINABLE_BLOCKS, PICTURE_POOLINGS, STRIDE, check_heads

PHONE_VIEW_LOSSES = ("best-cell", "pooled")
PASTE_SCALES = ("donor", "spread")
PASTE_ROTATIONS = ("upright", "quarter-turns")
CAMERA_EFFECTS = ("none", "degrade")
# The narrowest width (share of the picture's) a spread paste draws: 2% is 9 pixels at 448 px, CCTV phones' scale.
SMALLEST_SPREAD_WIDTH = 0.02
# How much a pasted phone may be enlarged over its width in its own picture: more is a blur, not a phone.
MAX_PASTE_ENLARGEMENT = 1.4
# The smallest crop (share of the area) of a picture that shows a phone without a box: a smaller crop could cut
# the phone out and still be labelled "phone". Every version before min_crop_area cropped all pictures this far.
UNBOXED_PHONE_MIN_CROP_AREA = 0.55
# A guard against a typo: every head trains for ~2 minutes a fold on this machine.
MAX_HEADS = 8

Check = Callable[[Any], str | None]


def knob(default: Any, help_text: str, check: Check | None = None) -> Any:
    """A recipe field: its default, what it means (shown by ``--help``) and its rule (None = any value)."""
    return field(default=default, metadata={"help": help_text, "check": check})


def at_least(minimum: float) -> Check:
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def between(low: float, high: float, *, include_low: bool = True, include_high: bool = True) -> Check:
    def check(value: float) -> str | None:
        above = value >= low if include_low else value > low
        below = value <= high if include_high else value < high
        if above and below:
            return None
        return f"must be between {low} and {high} ({'inclusive' if include_low and include_high else 'exclusive'})"

    return check


def one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def image_side(value: int) -> str | None:
    if value < 64 or value % STRIDE:
        return f"must be a multiple of {STRIDE} (the network's stride) and at least 64"
    return None


def validate(instance: Any) -> None:
    """Check every field of a recipe dataclass against its type and rule; raise one ValueError naming the knob."""
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        default = item.default
        if dataclasses.is_dataclass(default) or default is dataclasses.MISSING:
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(instance, item.name, value)
        if type(value) is not type(default):
            kind = {int: "a whole number", float: "a number"}.get(type(default), type(default).__name__)
            raise ValueError(f"{item.name} must be {kind}; got {value!r}.")
        check = item.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ValueError(f"{item.name} {problem}; got {value!r}.")


@dataclass(frozen=True)
class ViewConfig:
    """How each picture is shown to the frozen trunk; saved with the feature cache, so a change rebuilds it."""

    image_size: int = knob(
        448,
        "input side in pixels (a multiple of 16, at least 64); the picture is squeezed to a square of this side",
        image_side,
    )
    augmented_views: int = knob(
        2, "augmented views (crop, flip, colour) rendered per picture besides its clean view", at_least(0)
    )
    pasted_views: int = knob(
        2, "views per phone-free scene with a real boxed phone pasted in (copy-paste augmentation)", at_least(0)
    )
    imagenet_paste_fraction: float = knob(
        0.3, "share of everyday photos (source imagenet-sample) that also receive pasted phones", between(0, 1)
    )
    paste_scale: str = knob(
        "spread",
        f"how wide a pasted phone is: spread (scene-lite0-v8's: log-uniform from {SMALLEST_SPREAD_WIDTH:.0%} of the"
        f" picture up to {MAX_PASTE_ENLARGEMENT} times its width in its own picture, so a phone held up to a webcam"
        " also appears at the scale of desks and streets; never enlarged beyond that) or donor (v1-v7's:"
        f" 0.7-{MAX_PASTE_ENLARGEMENT} times that width)",
        one_of(*PASTE_SCALES),
    )
    paste_rotation: str = knob(
        "quarter-turns",
        "how a pasted phone is turned: quarter-turns (scene-lite0-v10's: turned by 0, 90, 180 or 270 degrees at"
        " random: phones lie on tables and are held sideways, while the boxed donors are mostly held up) or upright"
        " (as in its own picture; v1-v9's)",
        one_of(*PASTE_ROTATIONS),
    )
    camera_effects: str = knob(
        "degrade",
        "what else an augmented or pasted view goes through: degrade (scene-lite0-v10's: at random grey, blur, JPEG"
        " artefacts, low light; the cameras of drivers, CCTV and old phones, which the training pictures barely"
        " show) or none (v1-v9's)",
        one_of(*CAMERA_EFFECTS),
    )
    min_crop_area: float = knob(
        UNBOXED_PHONE_MIN_CROP_AREA,
        "smallest share of the picture an augmented crop keeps (a zoom of up to 1/sqrt of it) where every phone is "
        f"boxed or there is none; a picture with an unboxed phone never goes below {UNBOXED_PHONE_MIN_CROP_AREA}",
        between(0.05, 1),
    )
    seed: int = knob(0, "seed of the views' random crops, colours and pastes", at_least(0))

    def __post_init__(self) -> None:
        validate(self)

    @property
    def grid(self) -> int:
        return self.image_size // STRIDE

    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(image_size=self.image_size, resize_size=self.image_size, center_crop=False)


@dataclass(frozen=True)
class TrainSettings:
    """How the head (and any tuned trunk blocks) is optimised on the cached features (AdamW, cosine decay, fixed
    epoch count)."""

    epochs: int = knob(24, "passes over the training pictures for each head (one random view each time)", at_least(1))
    batch_size: int = knob(32, "views per optimisation step", at_least(1))
    learning_rate: float = knob(
        2e-3, "peak AdamW learning rate, decayed to zero by a cosine", between(0, 1, include_low=False)
    )
    weight_decay: float = knob(1e-4, "AdamW weight decay", at_least(0))
    scene_repeats: int = knob(
        2,
        "times each scene picture (boxed, or from a scene source) is drawn per epoch: scenes are the main job",
        at_least(1),
    )
    box_loss_weight: float = knob(1.0, "weight of the box regression loss at phone cells", at_least(0))
    picture_loss_weight: float = knob(
        2.0, "weight of the picture-level loss (what trains phone pictures without boxes)", at_least(0)
    )
    trainable_blocks: int = knob(
        0,
        f"trunk blocks, counted from the trunk's end (0-{MAX_TRAINABLE_BLOCKS}), trained with the head; their"
        " batch-norm keeps ImageNet statistics, and the feature cache is kept at the first one's input",
        between(0, MAX_TRAINABLE_BLOCKS),
    )
    trunk_learning_rate_scale: float = knob(
        0.1, "the tuned trunk blocks' learning rate as a fraction of the head's", between(0, 1, include_low=False)
    )
    global_context: int = knob(
        1,
        "1 adds the whole picture's mean feature to every cell (helps cells inside a phone that fills the frame);"
        " 0 keeps cells local",
        between(0, 1),
    )
    picture_pooling: str = knob(
        "lse",
        "how a picture's verdict pools its cells' log-odds: lse (log-sum-exp, a soft 'any cell' that adds up several"
        " weak phones; phone pictures train their best cell) or max (the best cell alone)",
        one_of(*PICTURE_POOLINGS),
    )
    phone_view_loss: str = knob(
        "pooled",
        "what a phone view's picture loss trains: pooled (the verdict's own pooling, scene-lite0-v5's: more scene"
        " phones found and better ranked on sources left out of training, fewer best boxes on the phone),"
        " or best-cell (its strongest cell, v1-v4's: keeps the evidence on the phone; docs/experiments.md)",
        one_of(*PHONE_VIEW_LOSSES),
    )
    heads: int = knob(
        3,
        "heads trained alone on the same views, with seeds seed, seed+1, ..., and averaged by the network (their"
        " cells' log-odds and boxes); needs trainable_blocks 0",
        between(1, MAX_HEADS),
    )
    seed: int = knob(0, "seed of the folds, the (first) head's initial weights and its training draws", at_least(0))

    def __post_init__(self) -> None:
        validate(self)
        check_heads(self.heads, self.trainable_blocks)


@dataclass(frozen=True)
class SceneRecipe:
    """Everything that decides what a scene model learns, besides its pictures; printed and saved in training.json."""

    views: ViewConfig = field(default_factory=ViewConfig)
    settings: TrainSettings = field(default_factory=TrainSettings)
    folds: int = knob(4, "grouped cross-validation folds: out-of-fold scores give calibration and figures", at_least(2))
    max_false_positive_rate: float = knob(
        0.03,
        "highest out-of-fold false-positive rate allowed on the phone-free pictures of each slice (scenes, close-ups)"
        " when choosing the threshold",
        between(0, 1, include_low=False, include_high=False),
    )

    def __post_init__(self) -> None:
        if not isinstance(self.views, ViewConfig) or not isinstance(self.settings, TrainSettings):
            raise ValueError("views must be a ViewConfig and settings a TrainSettings.")
        validate(self)


GROUPS: tuple[tuple[str | None, type, str], ...] = (
    ("views", ViewConfig, "views (rendered once, trunk features cached)"),
    ("settings", TrainSettings, "optimisation of the head"),
    (None, SceneRecipe, "cross-validation and decision"),
)


def _knobs(cls: type) -> list[dataclasses.Field]:
    return [item for item in dataclasses.fields(cls) if "help" in item.metadata]


def flat_names() -> list[str]:
    """Every knob's flat name (``seed`` appears in two groups and sets both)."""
    names: list[str] = []
    for _, cls, _ in GROUPS:
        names += [item.name for item in _knobs(cls) if item.name not in names]
    return names


def recipe_from_flat(values: Mapping[str, Any], base: SceneRecipe | None = None) -> SceneRecipe:
    """``base`` (default: the default recipe) with the knobs named in ``values`` changed; unknown names refused.

    A name shared by two groups (``seed``) sets it in both. Raises :class:`ValueError` for an unknown name or a
    bad value, before anything is built.
    """
    unknown = sorted(set(values) - set(flat_names()))
    if unknown:
        raise ValueError(f"Unknown training setting(s) {', '.join(unknown)}; known: {', '.join(flat_names())}.")
    base = base or SceneRecipe()

    def changed(instance: Any) -> Any:
        wanted = {item.name: values[item.name] for item in _knobs(type(instance)) if item.name in values}
        return dataclasses.replace(instance, **wanted)

    recipe: SceneRecipe = dataclasses.replace(changed(base), views=changed(base.views), settings=changed(base.settings))
    return recipe


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per knob, grouped, with its meaning, rule and default in the help text."""
    helps: dict[str, list[str]] = {}
    for _, cls, _ in GROUPS:
        for item in _knobs(cls):
            helps.setdefault(item.name, []).append(item.metadata["help"])
    added: set[str] = set()
    for _, cls, title in GROUPS:
        group = parser.add_argument_group(title)
        for item in _knobs(cls):
            if item.name in added:
                continue
            added.add(item.name)
            default = item.default
            group.add_argument(
                "--" + item.name.replace("_", "-"),
                dest=item.name,
                type=type(default),
                default=default,
                metavar=type(default).__name__.upper(),
                # A knob's help is plain text (the training log prints it too); argparse reads "%" as a format.
                help="; ".join(helps[item.name]).replace("%", "%%") + " (default: %(default)s)",
            )


def recipe_from_args(args: argparse.Namespace) -> SceneRecipe:
    """The recipe the parsed flags describe (raises ValueError for a bad value)."""
    return recipe_from_flat({name: getattr(args, name) for name in flat_names()})


def describe(recipe: SceneRecipe) -> list[str]:
    """One line per knob, ``group.name = value  # meaning``: the run's full configuration, for the log."""
    lines = []
    for attribute, cls, _ in GROUPS:
        instance = getattr(recipe, attribute) if attribute else recipe
        for item in _knobs(cls):
            name = f"{attribute}.{item.name}" if attribute else item.name
            lines.append(f"{name:<34} = {getattr(instance, item.name)!r:<8}  # {item.metadata['help']}")
    return lines
