"""The network shape a scene model's manifest records under ``options``: what must match to load its weights.

One reader for the serving engines and for retraining (which keeps the active model's shape), so a new option is
added in one place. It has no torch import: the web process reads it without loading the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SceneNetworkOptions:
    """Head width, how many trunk blocks were tuned, whether the head has the global-context layer, how the
    cells pool into the picture's evidence, and how many heads are averaged.

    Manifests written before an option existed read as its default (the shape those models were trained with).
    """

    head_width: int = 96
    trainable_blocks: int = 0
    global_context: bool = False
    picture_pooling: str = "max"
    heads: int = 1

    @classmethod
    def from_manifest_options(cls, options: Mapping[str, Any]) -> SceneNetworkOptions:
        return cls(
            head_width=int(options.get("head_width", cls.head_width)),
            trainable_blocks=int(options.get("trainable_blocks", cls.trainable_blocks)),
            global_context=bool(options.get("global_context", cls.global_context)),
            picture_pooling=str(options.get("picture_pooling", cls.picture_pooling)),
            heads=int(options.get("heads", cls.heads)),
        )

    def as_manifest_options(self) -> dict[str, Any]:
        return {
            "head_width": self.head_width,
            "trainable_blocks": self.trainable_blocks,
            "global_context": self.global_context,
            "picture_pooling": self.picture_pooling,
            "heads": self.heads,
        }
