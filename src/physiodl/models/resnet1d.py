"""A 1-D ResNet for raw signals of any length (e.g. single-lead ECG at 300 Hz)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from physiodl.models.registry import register_model

POOLS = ("mean", "meanmax")


class SqueezeExcitation(nn.Module):
    """Channel gates from the time-averaged activations (Hu et al., 2018)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        squeezed = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.Linear(channels, squeezed), nn.ReLU(), nn.Linear(squeezed, channels), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x.mean(dim=2)).unsqueeze(2)


class ResidualBlock(nn.Module):
    """``conv-BN-ReLU-conv-BN`` (+ squeeze-excitation) plus a shortcut, then ReLU.

    The first convolution strides; the shortcut average-pools and projects (1x1 conv + BN)
    when the shape changes.
    """

    def __init__(self, inputs: int, outputs: int, kernel_size: int, stride: int, se: int) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(inputs, outputs, kernel_size, stride, padding, bias=False),
            nn.BatchNorm1d(outputs),
            nn.ReLU(inplace=True),
            nn.Conv1d(outputs, outputs, kernel_size, 1, padding, bias=False),
            nn.BatchNorm1d(outputs),
            SqueezeExcitation(outputs, se) if se else nn.Identity(),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.AvgPool1d(stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                nn.Conv1d(inputs, outputs, 1, bias=False),
                nn.BatchNorm1d(outputs),
            )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


@register_model
class ResNet1d(nn.Module):
    """1-D ResNet for raw signals: a strided stem, residual stages, global average pooling.

    Stem: ``conv(stem_kernel, stem_stride)-BN-ReLU-maxpool(3, stride 2)``, then one stage per
    entry of ``widths``, each ``blocks`` `ResidualBlock`s of which the first strides by 2,
    then the mean over time, dropout and a linear layer. The defaults (0.9M parameters)
    downsample by 512: 15 s at 300 Hz end as 9 steps of 192 features; most computation is
    in the early, narrow stages. Any input length works (a few hundred samples or more
    make sense). ``se_reduction``: squeeze-excitation reduction ratio, 0 for none.
    ``recurrent``: hidden size of a bidirectional GRU over the last stage's steps before the
    mean (0 for none): each step's features then see the whole input, not only their
    receptive field. ``pool``: ``mean`` over time, or ``meanmax`` (the mean and the maximum,
    concatenated: a brief event anywhere in a long record keeps its weight).
    """

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        widths: Sequence[int] = (32, 48, 64, 96, 128, 192),
        blocks: int = 1,
        kernel_size: int = 7,
        stem_kernel: int = 15,
        stem_stride: int = 4,
        dropout: float = 0.2,
        se_reduction: int = 8,
        recurrent: int = 0,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool = {pool!r} is not one of {', '.join(POOLS)}")
        self.pool = pool
        stem = widths[0]
        layers: list[nn.Module] = [
            nn.Conv1d(in_channels, stem, stem_kernel, stem_stride, stem_kernel // 2, bias=False),
            nn.BatchNorm1d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, 2, 1),
        ]
        inputs = stem
        for width in widths:
            for index in range(blocks):
                stride = 2 if index == 0 else 1
                layers.append(ResidualBlock(inputs, width, kernel_size, stride, se_reduction))
                inputs = width
        self.features = nn.Sequential(*layers)
        self.recurrent: nn.GRU | None = None
        if recurrent:
            self.recurrent = nn.GRU(inputs, recurrent, batch_first=True, bidirectional=True)
            inputs = 2 * recurrent
        if pool == "meanmax":
            inputs *= 2
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(inputs, out_size))

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, out_size)``."""
        steps = self.features(x)
        if self.recurrent is not None:
            steps = self.recurrent(steps.transpose(1, 2))[0].transpose(1, 2)
        pooled = steps.mean(dim=2)
        if self.pool == "meanmax":
            pooled = torch.cat((pooled, steps.amax(dim=2)), dim=1)
        return self.head(pooled)
