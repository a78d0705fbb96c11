"""Types for the parts of ``efficientnet-lite-pytorch`` (an untyped library) that ``inference`` and training use.

Without them every attribute of the network is ``Tensor | Module`` (``nn.Module.__getattr__``) and every block
call is ``Any``. Only what the project touches is declared; the library itself is unchanged.
"""

from collections.abc import Iterator
from typing import Any, NamedTuple, overload

import torch
from torch import nn

__version__: str

class GlobalParams(NamedTuple):
    drop_connect_rate: float | None
    num_classes: int
    dropout_rate: float

class MBConvBlock(nn.Module):
    _project_conv: nn.Conv2d
    def forward(self, inputs: torch.Tensor, drop_connect_rate: float | None = None) -> torch.Tensor: ...
    def __call__(self, inputs: torch.Tensor, drop_connect_rate: float | None = None) -> torch.Tensor: ...

class _Blocks(nn.ModuleList):
    """``EfficientNet._blocks``: a ModuleList that holds only :class:`MBConvBlock`."""

    @overload
    def __getitem__(self, idx: slice) -> _Blocks: ...
    @overload
    def __getitem__(self, idx: int) -> MBConvBlock: ...
    def __iter__(self) -> Iterator[MBConvBlock]: ...

class EfficientNet(nn.Module):
    _global_params: GlobalParams
    _conv_stem: nn.Conv2d
    _bn0: nn.BatchNorm2d
    _blocks: _Blocks
    _conv_head: nn.Conv2d
    _bn1: nn.BatchNorm2d
    _avg_pooling: nn.AdaptiveAvgPool2d
    _dropout: nn.Dropout
    _fc: nn.Linear
    _swish: nn.Module
    @classmethod
    def from_name(cls, model_name: str, in_channels: int = 3, **override_params: Any) -> EfficientNet: ...
    def extract_features(self, inputs: torch.Tensor) -> torch.Tensor: ...
    def forward(self, inputs: torch.Tensor) -> torch.Tensor: ...
