"""The models of cross-validation folds as one model: each with its own fold's scaling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from physiodl.transforms.normalise import Normaliser


class Standardise(nn.Module):
    """``(x - mean) / std`` per channel of ``(batch, channels, time)``; the statistics are
    buffers, so they travel in the state dict."""

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_channels))
        self.register_buffer("std", torch.ones(n_channels))

    @classmethod
    def of(cls, normaliser: Normaliser | None, n_channels: int) -> Standardise:
        """The normaliser's statistics (identity for ``None``)."""
        layer = cls(n_channels)
        if normaliser is not None:
            layer.mean.copy_(torch.from_numpy(np.asarray(normaliser.mean, dtype=np.float32)))
            layer.std.copy_(torch.from_numpy(np.asarray(normaliser.std, dtype=np.float32)))
        return layer

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean[:, None]) / self.std[:, None]


class FoldEnsemble(nn.Module):
    """The mean output of ``members``, each applied to its own standardisation of the input.

    Averaging raw outputs means: values for point regression, logits (a product of the
    members' distributions) for classification and binned regression.
    """

    def __init__(self, members: Sequence[nn.Module], n_channels: int) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.scaling = nn.ModuleList(Standardise(n_channels) for _ in members)

    @classmethod
    def of(
        cls, members: Sequence[nn.Module], normalisers: Sequence[Normaliser | None], n_channels: int
    ) -> FoldEnsemble:
        ensemble = cls(members, n_channels)
        for layer, normaliser in zip(ensemble.scaling, normalisers, strict=True):
            layer.load_state_dict(Standardise.of(normaliser, n_channels).state_dict())
        return ensemble

    def forward(self, x: Tensor) -> Tensor:
        outputs = [m(s(x)) for m, s in zip(self.members, self.scaling, strict=True)]
        return torch.stack(outputs).mean(dim=0)
