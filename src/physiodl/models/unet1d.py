"""A 1-D U-Net for per-bin outputs (peak finding, segmentation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.models.detection import check_per_bin, pad_to_multiple
from physiodl.models.registry import register_model


class ConvBlock(nn.Module):
    """``blocks`` x ``conv(kernel_size, dilation)-BN-ReLU``, with a residual shortcut."""

    def __init__(self, inputs: int, outputs: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        width = inputs
        for dilation in dilations:
            padding = dilation * (kernel_size // 2)
            layers += [
                nn.Conv1d(
                    width, outputs, kernel_size, padding=padding, dilation=dilation, bias=False
                ),
                nn.BatchNorm1d(outputs),
                nn.ReLU(inplace=True),
            ]
            width = outputs
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if inputs == outputs else nn.Conv1d(inputs, outputs, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


@register_model
class UNet1d(nn.Module):
    """Encoder-decoder with skip connections at every resolution (Ronneberger et al., 2015).

    A stem ``conv(stem_kernel)`` to ``widths[0]`` channels, then per level a `ConvBlock` and
    (but the last) a max-pool by 2; the deepest level's block uses ``bottleneck_dilations``
    for a wide view. The decoder upsamples by 2 (linear), concatenates the skip of the same
    resolution and applies a `ConvBlock`; a 1x1 convolution gives one score per bin. Any input
    length works (padded to a multiple of ``patch * 2 ** (levels - 1)``, cropped back).

    ``patch`` > 1 folds that many neighbouring bins into the channels first (space to depth)
    and unfolds ``patch`` scores per step at the end (sub-pixel output): full-resolution
    outputs at ``1 / patch`` of the computation.

    Per-bin output ``(batch, time)`` when ``out_size`` is 1 (a detection task).
    """

    per_bin: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        widths: Sequence[int] = (16, 32, 48, 64),
        kernel_size: int = 5,
        stem_kernel: int = 7,
        bottleneck_dilations: Sequence[int] = (1, 2, 4),
        dropout: float = 0.0,
        patch: int = 1,
    ) -> None:
        super().__init__()
        check_per_bin(type(self).__name__, out_size)
        if len(widths) < 2 or kernel_size % 2 == 0 or patch < 1:
            raise RecipeError(
                f"UNet1d needs at least 2 widths, an odd kernel_size and patch >= 1, got "
                f"{list(widths)}, {kernel_size}, {patch}"
            )
        self.patch = patch
        self.stem = nn.Sequential(
            nn.Conv1d(
                in_channels * patch, widths[0], stem_kernel, padding=stem_kernel // 2, bias=False
            ),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.down = nn.ModuleList()
        inputs = widths[0]
        for level, width in enumerate(widths):
            last = level == len(widths) - 1
            dilations = tuple(bottleneck_dilations) if last else (1, 1)
            self.down.append(ConvBlock(inputs, width, kernel_size, dilations))
            inputs = width
        self.pool = nn.MaxPool1d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="linear", align_corners=False)
        self.up = nn.ModuleList(
            ConvBlock(widths[level + 1] + widths[level], widths[level], kernel_size, (1, 1))
            for level in reversed(range(len(widths) - 1))
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv1d(widths[0], patch, 1)
        self.multiple = patch * 2 ** (len(widths) - 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, time)``."""
        padded = pad_to_multiple(x, self.multiple)
        batch, channels, steps = padded.shape
        folded = padded.reshape(batch, channels, steps // self.patch, self.patch)
        h = self.stem(folded.transpose(2, 3).reshape(batch, channels * self.patch, -1))
        skips = []
        for index, block in enumerate(self.down):
            if index:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, skips[-2::-1], strict=True):
            h = block(torch.cat((self.upsample(h), skip), dim=1))
        scores = self.head(self.dropout(h))  # (batch, patch, steps / patch)
        return scores.transpose(1, 2).reshape(batch, steps)[:, : x.shape[-1]]
