"""The seed's configurable CNN for heart-rate regression (seed 002, section 1, ``CnnModel``)."""

from __future__ import annotations

from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.models.registry import register_model


@register_model
class ConvDenseNet(nn.Module):
    """Convolution blocks over time, global average pooling, then a dense head.

    Block ``i`` (``i = 0 .. conv_layers - 1``): ``Conv1d(kernel_size, padding="same")`` with
    ``initial_channels * 2**i`` channels, batch-norm (``batch_norm``), ReLU, then max-pooling
    by 2 (all but the last block). The last block ends in global average pooling. The head:
    ``dense_layers - 1`` hidden ``Linear(dense_units)`` + ReLU (+ ``dropout``), then a linear
    output. The seed's best heart-rate model: ``conv_layers = 4, batch_norm = true,
    dense_layers = 3, dropout = 0.5`` on 8 s of PPG + accelerometer at 25 Hz.
    """

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        conv_layers: int = 1,
        kernel_size: int = 5,
        initial_channels: int = 16,
        batch_norm: bool = False,
        dense_layers: int = 1,
        dense_units: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if conv_layers < 1 or dense_layers < 1 or not 0.0 <= dropout < 1.0:
            raise RecipeError(
                f"ConvDenseNet needs conv_layers >= 1, dense_layers >= 1 and 0 <= dropout < 1; "
                f"got {conv_layers}, {dense_layers}, {dropout}"
            )
        if input_length is not None and input_length < 2 ** (conv_layers - 1):
            raise RecipeError(
                f"ConvDenseNet: {conv_layers} conv layers halve the time {conv_layers - 1} times; "
                f"input_length={input_length} is too short"
            )
        layers: list[nn.Module] = []
        inputs = in_channels
        for i in range(conv_layers):
            width = initial_channels * 2**i
            layers.append(nn.Conv1d(inputs, width, kernel_size, padding="same"))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            layers.append(nn.MaxPool1d(2) if i < conv_layers - 1 else nn.AdaptiveAvgPool1d(1))
            inputs = width
        layers.append(nn.Flatten())
        for _ in range(dense_layers - 1):
            layers += [nn.Linear(inputs, dense_units), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            inputs = dense_units
        layers.append(nn.Linear(inputs, out_size))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, out_size)``."""
        return self.layers(x)
