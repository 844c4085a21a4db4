"""The seed's convolutional network over spectrogram frames (section 4.9 c)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.models.registry import register_model


@register_model
class ConvNet(nn.Module):
    """Convolutions over time with the input channels (frequencies) as channels.

    ``conv(k) 32, ReLU, avgpool 2, conv(k) 64, ReLU, avgpool 2, conv(k) 128, ReLU``, the mean
    over time, then a linear layer. Unpadded convolutions: inputs need at least
    `min_length` steps (18 for the defaults).
    """

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 3,
        pool: int = 2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inputs = in_channels
        for index, width in enumerate(channels):
            if index:
                layers.append(nn.AvgPool1d(pool))
            layers += [nn.Conv1d(inputs, width, kernel_size), nn.ReLU()]
            inputs = width
        self.net = nn.Sequential(
            *layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(inputs, out_size)
        )
        self.min_length = 1
        for _ in channels[1:]:
            self.min_length = (self.min_length + kernel_size - 1) * pool
        self.min_length += kernel_size - 1
        if input_length is not None and input_length < self.min_length:
            raise RecipeError(
                f"ConvNet needs inputs of at least {self.min_length} steps, got "
                f"input_length={input_length}; use longer chunks or a smaller kernel_size/pool"
            )

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, out_size)``."""
        return self.net(x)
