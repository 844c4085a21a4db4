"""Convolutions over spectrogram frames, a bidirectional LSTM over time, pooled."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from physiodl.models.recurrent import LSTM
from physiodl.models.registry import register_model


@register_model
class CRNN(nn.Module):
    """Spectrogram ``(batch, frequencies, frames)`` of any length -> ``(batch, out_size)``.

    ``conv(kernel_size)-BN-ReLU`` blocks over time with the frequencies as channels (each
    halving the frames, ceil), the from-scratch bidirectional `LSTM` over the remaining
    frames, then the mean and maximum over time of its outputs, dropout and a linear layer.
    """

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        channels: Sequence[int] = (64, 64),
        kernel_size: int = 3,
        hidden: int = 64,
        num_layers: int = 1,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inputs = in_channels
        for width in channels:
            layers += [
                nn.Conv1d(inputs, width, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2, ceil_mode=True),
            ]
            inputs = width
        self.conv = nn.Sequential(*layers)
        self.lstm = LSTM(inputs, hidden, num_layers, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, out_size))

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, out_size)``."""
        sequence, _ = self.lstm(self.conv(x).transpose(1, 2))
        pooled = torch.cat((sequence.mean(dim=1), sequence.amax(dim=1)), dim=1)
        return self.head(pooled)
