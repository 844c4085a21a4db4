"""The seed's per-bin peak finders: a BiLSTM, a CNN encoder-decoder and their hybrid.

All map ``(batch, channels, time)`` to one score per bin, ``(batch, time)``; ``out_size`` must
be 1 (a detection task's). The convolutional ones pad the input to a multiple of their total
stride and crop the output back, so any length works (the seed's 4,000 bins need no padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.models.recurrent import LSTM
from physiodl.models.registry import register_model


def check_per_bin(name: str, out_size: int) -> None:
    """Per-bin models give one score per bin: ``out_size`` must be 1."""
    if out_size != 1:
        raise RecipeError(
            f"{name} gives one score per bin (a detection task); got out_size={out_size}"
        )


def recurrent_layer(kind: str, inputs: int, hidden: int, layers: int) -> nn.Module:
    """A bidirectional LSTM, ``(batch, time, inputs)`` in: the from-scratch one or torch's."""
    if kind == "scratch":
        return LSTM(inputs, hidden, layers, bidirectional=True)
    if kind == "torch":
        return nn.LSTM(inputs, hidden, layers, batch_first=True, bidirectional=True)
    raise RecipeError(f"recurrent = {kind!r} is not one of 'scratch', 'torch'")


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """``x`` zero-padded at the end of time to a multiple of ``multiple`` steps."""
    extra = -x.shape[-1] % multiple
    return F.pad(x, (0, extra)) if extra else x


@register_model
class PeakBiLSTM(nn.Module):
    """The seed's ``BiRNN_2``: a stacked bidirectional LSTM, then a bidirectional LSTM of one
    unit whose two directions are averaged into the per-bin score.

    ``recurrent`` picks the layer: ``torch`` (`torch.nn.LSTM`, as the seed) or ``scratch``
    (`physiodl.models.recurrent.LSTM`, numerically the same).
    """

    per_bin: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        hidden: int = 96,
        num_layers: int = 2,
        recurrent: str = "torch",
    ) -> None:
        super().__init__()
        check_per_bin(type(self).__name__, out_size)
        self.lstm = recurrent_layer(recurrent, in_channels, hidden, num_layers)
        self.head = recurrent_layer(recurrent, 2 * hidden, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, time)``."""
        sequence, _ = self.lstm(x.transpose(1, 2))
        both, _ = self.head(sequence)
        return both.mean(dim=2)


@register_model
class PeakCNN(nn.Module):
    """The seed's CNN encoder-decoder: strided convolutions down, transposed ones up.

    Encoder: ``conv(kernel_size, stride) -> BN`` per entry of ``widths``/``strides``; decoder:
    the mirror with transposed convolutions to ``decoder_width`` channels, then a 1x1
    convolution to the score. The seed has no activation between layers (``activation =
    "none"``); ``"relu"`` adds one after every batch norm.
    """

    per_bin: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        widths: Sequence[int] = (64, 128, 256, 256),
        strides: Sequence[int] = (4, 2, 2, 2),
        kernel_size: int = 5,
        decoder_width: int = 32,
        activation: str = "none",
    ) -> None:
        super().__init__()
        check_per_bin(type(self).__name__, out_size)
        if len(widths) != len(strides) or not widths:
            raise RecipeError(f"PeakCNN: widths {widths} and strides {strides} need equal length")
        if activation not in ("none", "relu"):
            raise RecipeError(f"PeakCNN: activation must be 'none' or 'relu', got {activation!r}")
        act = nn.ReLU if activation == "relu" else nn.Identity
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        inputs = in_channels
        for width, stride in zip(widths, strides, strict=True):
            layers += [nn.Conv1d(inputs, width, kernel_size, stride, pad), nn.BatchNorm1d(width)]
            layers.append(act())
            inputs = width
        outs = [*widths[-2::-1], decoder_width]
        for width, stride in zip(outs, strides[::-1], strict=True):
            layers.append(
                nn.ConvTranspose1d(
                    inputs, width, kernel_size, stride, pad, output_padding=stride - 1
                )
            )
            layers += [nn.BatchNorm1d(width), act()]
            inputs = width
        layers.append(nn.Conv1d(inputs, 1, 1))
        self.net = nn.Sequential(*layers)
        self.multiple = int(torch.tensor(list(strides)).prod())

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, time)``."""
        return self.net(pad_to_multiple(x, self.multiple))[:, 0, : x.shape[-1]]


@register_model
class PeakRCNN(nn.Module):
    """The seed's hybrid: strided convolutions, a BiLSTM over the coarse sequence, and
    transposed convolutions back up with skip connections (concatenated encoder outputs and
    the input), then a 1x1 convolution to the score.

    Three stride-2 convolutions (``widths``) bring 4,000 bins to 500 steps for the LSTM (the
    seed's reason: an LSTM cannot keep dependencies over thousands of steps).
    """

    per_bin: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        widths: Sequence[int] = (64, 128, 256),
        kernel_size: int = 5,
        hidden: int = 64,
        num_layers: int = 2,
        decoder_width: int = 32,
        recurrent: str = "torch",
    ) -> None:
        super().__init__()
        check_per_bin(type(self).__name__, out_size)
        if len(widths) != 3:
            raise RecipeError(f"PeakRCNN needs 3 encoder widths, got {list(widths)}")
        pad = kernel_size // 2
        w1, w2, w3 = widths
        self.encoder = nn.ModuleList(
            nn.Conv1d(i, o, kernel_size, 2, pad) for i, o in ((in_channels, w1), (w1, w2), (w2, w3))
        )
        self.encoder_norms = nn.ModuleList(nn.BatchNorm1d(w) for w in widths)
        self.lstm = recurrent_layer(recurrent, w3, hidden, num_layers)

        def up(i: int, o: int) -> nn.ConvTranspose1d:
            return nn.ConvTranspose1d(i, o, kernel_size, 2, pad, output_padding=1)

        self.decoder = nn.ModuleList(
            [up(2 * hidden, w2), up(2 * w2, w1), up(2 * w1, decoder_width)]
        )
        self.decoder_norms = nn.ModuleList(
            nn.BatchNorm1d(w) for w in (2 * w2, 2 * w1, decoder_width + in_channels)
        )
        self.head = nn.Conv1d(decoder_width + in_channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, time)``."""
        padded = pad_to_multiple(x, 8)
        skips = [padded]
        h = padded
        for conv, norm in zip(self.encoder, self.encoder_norms, strict=True):
            skip = conv(h)
            skips.append(skip)
            h = norm(skip)
        h, _ = self.lstm(h.transpose(1, 2))
        h = h.transpose(1, 2)
        for conv, norm, skip in zip(self.decoder, self.decoder_norms, skips[-2::-1], strict=True):
            h = norm(torch.cat((conv(h), skip), dim=1))
        return self.head(h)[:, 0, : x.shape[-1]]
