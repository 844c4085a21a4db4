"""Seeded augmentations of numpy batches ``(n, channels, time)``; each returns a new float32 array.

Random chunks (the seed's augmentation) live in `physiodl.transforms.windows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from physiodl.errors import RecipeError
from physiodl.transforms.rr_intervals import RR_CHANNEL

DERIVED_CHANNELS = (RR_CHANNEL,)
"""Channels computed from others, which amplitude augmentations must not alter."""


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentations applied to each batch, in this order.

    ``scale``: amplitude factors from ``[1 - scale, 1 + scale]``; ``flip``: invert the sign of
    half of the examples (ECG leads are often recorded the wrong way round); ``noise``: Gaussian
    noise of ``noise`` times each example's standard deviation. Zero / false turns one off.
    ``channels``: the indices of the channels augmented; by default (`checked`) every measured
    channel, leaving derived ones such as the RR-interval track as they are.
    """

    scale: float = 0.0
    flip: bool = False
    noise: float = 0.0
    channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.scale < 1:
            raise RecipeError(f"augment.scale = {self.scale} must lie in [0, 1)")
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(self.channels))

    @property
    def active(self) -> bool:
        return self.scale > 0 or self.flip or self.noise > 0

    def checked(self, channel_names: Sequence[str]) -> Augmentation:
        """``self`` for input with these channels: listed ``channels`` must exist; unlisted,
        they are the measured channels, without derived ones (`DERIVED_CHANNELS`)."""
        n_channels = len(channel_names)
        if self.channels is None:
            measured = [i for i, name in enumerate(channel_names) if name not in DERIVED_CHANNELS]
            return self if len(measured) == n_channels else replace(self, channels=measured)
        if not all(0 <= c < n_channels for c in self.channels):
            raise RecipeError(
                f"train.augment.channels = {list(self.channels)}: the model's input has channels "
                f"0 to {n_channels - 1} ({', '.join(channel_names)})"
            )
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.channels is not None:
            x = _batch(x)
            chosen = list(self.channels)
            out = x.astype(np.float32, copy=True)
            out[:, chosen] = replace(self, channels=None)(x[:, chosen], rng)
            return out
        if self.scale > 0:
            x = amplitude_scale(x, rng, 1 - self.scale, 1 + self.scale)
        if self.flip:
            x = sign_flip(x, rng)
        if self.noise > 0:
            x = add_noise(x, rng, self.noise)
        return x


def amplitude_scale(
    x: np.ndarray, rng: np.random.Generator, low: float = 0.8, high: float = 1.2
) -> np.ndarray:
    """Multiply each example by one factor drawn uniformly from ``[low, high)``."""
    if not 0 < low <= high:
        raise RecipeError(f"amplitude_scale: need 0 < low <= high, got low={low}, high={high}")
    x = _batch(x)
    factors = rng.uniform(low, high, size=(x.shape[0], 1, 1))
    return (x * factors).astype(np.float32)


def sign_flip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Multiply each example by -1 with probability ``p``."""
    x = _batch(x)
    signs = np.where(rng.random(x.shape[0]) < p, -1.0, 1.0).astype(np.float32)
    return (x * signs[:, None, None]).astype(np.float32)


def add_noise(x: np.ndarray, rng: np.random.Generator, relative_std: float = 0.05) -> np.ndarray:
    """Add Gaussian noise: ``relative_std`` times each example's per-channel standard deviation."""
    if relative_std < 0:
        raise RecipeError(f"add_noise: relative_std={relative_std} must not be negative")
    x = _batch(x)
    scale = relative_std * x.std(axis=2, keepdims=True)
    return (x + rng.standard_normal(x.shape) * scale).astype(np.float32)


def time_shift(x: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Roll each example circularly in time by a shift drawn from ``[-max_shift, max_shift]``."""
    if max_shift < 0:
        raise RecipeError(f"time_shift: max_shift={max_shift} must not be negative")
    x = _batch(x)
    shifts = rng.integers(-max_shift, max_shift + 1, size=x.shape[0])
    steps = (np.arange(x.shape[2])[None, :] - shifts[:, None]) % x.shape[2]
    return np.take_along_axis(x, steps[:, None, :], axis=2).astype(np.float32)


def _batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"augmentations take (n, channels, time) batches, got shape {x.shape}")
    return x
