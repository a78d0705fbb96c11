"""A whole-picture model's second opinion on the pictures a scene model is unsure are not phones.

Why: the scene model finds phones as regions of a 448-px picture, which is what scenes need, but on close-ups
(a product photo, a phone filling a hand) it misses some that a network trained on whole pictures is sure of:
out of fold, ``finetuned-lite2-v2`` at 0.99 or more turned 45 of scene-lite0-v6's misses on close-ups into
phones and no phone-free picture of any source into one (docs/model.md). The member runs only where it can
change a verdict -- the scene model said "not a phone" with a probability of at least ``consulted_from`` -- so
most pictures pay nothing for it.

The rule, one place for every engine: where the member is consulted and gives at least ``at_least``, the
picture's probability becomes the member's (so the one decision threshold still labels it, and the probability
shown is the member's, whose calibration held there: every such picture out of fold was a phone); everything else
is the scene model's. The boxes stay the scene model's: its strongest peak is still where it looked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

# Chosen out of fold on scene-lite0-v6 with finetuned-lite2-v2 (docs/model.md): 0.99 turned 45 missed close-ups into
# phones and no phone-free picture (0.995: 41, 0.999: 30); from 0.01 the member is asked on a third of the shared
# pictures and finds every one of those 45 (all had 0.03 or more).
DEFAULT_AT_LEAST = 0.99
DEFAULT_CONSULTED_FROM = 0.01


class Member(Protocol):
    """What the rule needs of the model it asks (any loaded classifier has it)."""

    def phone_probabilities(self, images: Sequence[Image.Image]) -> list[float]: ...


@dataclass(frozen=True)
class SecondOpinionSpec:
    """What a manifest's ``second_opinion`` says: which model version (pinned by its manifest's checksum, which
    pins its files), how sure it must be, and from which scene probability it is asked."""

    model: str
    manifest_sha256: str
    at_least: float = DEFAULT_AT_LEAST
    consulted_from: float = DEFAULT_CONSULTED_FROM

    def __post_init__(self) -> None:
        if not 0 <= self.consulted_from <= 1 or not 0 < self.at_least <= 1:
            raise ValueError(
                f"second_opinion needs probabilities: at_least in (0, 1], consulted_from in [0, 1], "
                f"not {self.at_least!r} and {self.consulted_from!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecondOpinionSpec:
        return cls(
            model=str(data["model"]),
            manifest_sha256=str(data["manifest_sha256"]),
            at_least=float(data.get("at_least", DEFAULT_AT_LEAST)),
            consulted_from=float(data.get("consulted_from", DEFAULT_CONSULTED_FROM)),
        )

    def consulted(self, probability: float, threshold: float) -> bool:
        """Whether the member is asked about a picture the scene model gave ``probability``."""
        return self.consulted_from <= probability < threshold

    def settle(self, probability: float, member_probability: float) -> float:
        """The picture's probability once the member has spoken."""
        return member_probability if member_probability >= self.at_least else probability


def consulted_indices(probabilities: Sequence[float], spec: SecondOpinionSpec, threshold: float) -> list[int]:
    """The pictures (by index) the member is asked about."""
    return [index for index, probability in enumerate(probabilities) if spec.consulted(float(probability), threshold)]


def settled(probabilities: Sequence[float], answers: Mapping[int, float], spec: SecondOpinionSpec) -> list[float]:
    """``probabilities`` once the member has answered (``answers``: index -> its probability) where it was asked."""
    revised = [float(probability) for probability in probabilities]
    for index, answer in answers.items():
        revised[index] = spec.settle(revised[index], answer)
    return revised


def revised_probabilities(
    probabilities: Sequence[float],
    images: Sequence[Image.Image],
    *,
    spec: SecondOpinionSpec,
    member: Member,
    threshold: float,
) -> list[float]:
    """``probabilities`` (the scene model's, one per picture of ``images``) with the member's say applied; the member
    sees only the pictures :meth:`SecondOpinionSpec.consulted` picks, in one batch."""
    asked = consulted_indices(probabilities, spec, threshold)
    if not asked:
        return [float(probability) for probability in probabilities]
    answers = member.phone_probabilities([images[index] for index in asked])
    return settled(probabilities, dict(zip(asked, answers, strict=True)), spec)
