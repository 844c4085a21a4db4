"""Fully connected baselines of the seed (section 4.9 a, b)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.models.registry import register_model


def _mlp(inputs: int, hidden: Sequence[int], out_size: int) -> nn.Sequential:
    """Linear layers ``inputs -> *hidden -> out_size`` with a ReLU after each hidden one."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, out_size))


@register_model
class FullyConnectedNet(nn.Module):
    """All ``channels * time`` values -> 512 -> 256 -> ``out_size`` (ReLU between).

    Needs ``input_length``: it only takes inputs of that length.
    """

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        hidden: Sequence[int] = (512, 256),
    ) -> None:
        super().__init__()
        if input_length is None:
            raise RecipeError(
                "FullyConnectedNet flattens (channels, time) and needs input_length; "
                "give the model fixed-length chunks (a chunk length in the recipe)"
            )
        self.in_channels, self.input_length = in_channels, input_length
        self.net = _mlp(in_channels * input_length, hidden, out_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, input_length)`` -> ``(batch, out_size)``."""
        if x.shape[1:] != (self.in_channels, self.input_length):
            raise ValueError(
                f"FullyConnectedNet was built for inputs (batch, {self.in_channels}, "
                f"{self.input_length}), got {tuple(x.shape)}"
            )
        return self.net(x.flatten(1))


@register_model
class MeanSpectrumNet(nn.Module):
    """Mean over time of each channel (the mean spectrum) -> 128 -> 64 -> ``out_size``."""

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        hidden: Sequence[int] = (128, 64),
    ) -> None:
        super().__init__()
        self.net = _mlp(in_channels, hidden, out_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, out_size)``; any length."""
        return self.net(x.mean(dim=2))
