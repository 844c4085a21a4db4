"""Rate estimation from the spectrum of a window: a fixed spectral front end, a classical
spectral-peak rule that learns nothing, and a CNN that learns the rule along the frequency axis.

All three take raw windows ``(batch, channels, time)`` at ``fs`` Hz and score the bins of a
rate grid in cycles per minute (heart rate in bpm): ``bin_low, bin_low + bin_width, ...,
bin_high``; train them with ``RegressionTask(criterion="bins")`` on the same grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.models.registry import register_model
from physiodl.tracking import ValueBins


class RateSpectrum(nn.Module):
    """Power of every channel at the rate bins: a Hann-tapered DFT evaluated at exactly the
    bin frequencies (``rate / 60`` Hz), so an 8 s window gives a 1 bpm grid without padding.

    ``(batch, channels, time)`` -> ``(batch, channels, bins)``, each channel's power divided
    by its maximum over the bins (scale-free: 1 at the strongest bin).
    """

    def __init__(self, fs: float, input_length: int, bins: ValueBins) -> None:
        super().__init__()
        t = np.arange(input_length) / fs
        taper = np.hanning(input_length)
        angle = 2 * np.pi * t[:, None] * (bins.centres[None, :] / 60.0)
        for name, wave in (("cos", np.cos(angle)), ("sin", np.sin(angle))):
            self.register_buffer(name, torch.tensor(taper[:, None] * wave, dtype=torch.float32))
        self.input_length = input_length

    def forward(self, x: Tensor) -> Tensor:
        x = x - x.mean(dim=2, keepdim=True)
        power = (x @ self.cos).square() + (x @ self.sin).square()
        return power / power.amax(dim=2, keepdim=True).clamp_min(1e-12)


def _front_end(
    name: str,
    fs: float | None,
    input_length: int | None,
    out_size: int,
    bins: ValueBins,
) -> RateSpectrum:
    if fs is None or input_length is None:
        raise RecipeError(
            f"{name} needs the sampling rate and a fixed window length (features.chunks.length)"
        )
    if out_size != bins.count:
        raise RecipeError(
            f"{name}: the task scores {out_size} bins but bin_low..bin_high by bin_width give "
            f"{bins.count}; use the same grid in the model's hparams and the task options"
        )
    nyquist_rate = 60.0 * fs / 2
    if bins.high >= nyquist_rate:
        raise RecipeError(
            f"{name}: bin_high = {bins.high:g} per minute is at or above the Nyquist rate "
            f"{nyquist_rate:g} of {fs:g} Hz; lower it or sample faster"
        )
    return RateSpectrum(fs, input_length, bins)


def _channels(name: str, indices: Sequence[int], in_channels: int) -> list[int]:
    indices = [int(i) for i in indices]
    if any(not 0 <= i < in_channels for i in indices):
        raise RecipeError(f"{name} = {indices}: channel indices must lie in 0..{in_channels - 1}")
    return indices


@register_model
class SpectralPeak(nn.Module):
    """The classical baseline that learns nothing: the PPG's strongest spectral peak in the
    rate band, with accelerometer-dominant frequencies suppressed.

    Score of bin ``k``: ``log(P_k * max(0, 1 - acc_suppression * A_k))`` where ``P`` is the
    summed power of the ``ppg_channels`` and ``A`` the largest normalised power of the
    ``acc_channels`` (each axis scaled to 1 at its own peak, so a weak axis counts as much as
    a strong one). With ``max_jump`` tracking in the task this is a spectral tracker in the
    spirit of TROIKA (Zhang et al. 2015) without its sparse reconstruction.
    """

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        fs: float | None = None,
        ppg_channels: Sequence[int] = (0,),
        acc_channels: Sequence[int] = (),
        acc_suppression: float = 1.0,
        bin_low: float = 30.0,
        bin_high: float = 230.0,
        bin_width: float = 1.0,
    ) -> None:
        super().__init__()
        self.value_bins = ValueBins(bin_low, bin_high, bin_width)
        self.spectrum = _front_end("SpectralPeak", fs, input_length, out_size, self.value_bins)
        self.ppg = _channels("ppg_channels", ppg_channels, in_channels)
        self.acc = _channels("acc_channels", acc_channels, in_channels)
        if not self.ppg or acc_suppression < 0:
            raise RecipeError("SpectralPeak needs ppg_channels and acc_suppression >= 0")
        self.acc_suppression = acc_suppression

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, bins)`` log scores."""
        return peak_scores(self.spectrum(x), self.ppg, self.acc, self.acc_suppression)


def peak_scores(
    power: Tensor, ppg: list[int], acc: list[int], acc_suppression: float = 1.0
) -> Tensor:
    """`SpectralPeak`'s log scores ``(batch, bins)`` from `RateSpectrum` powers."""
    score = power[:, ppg].sum(dim=1)
    score = score / score.amax(dim=1, keepdim=True).clamp_min(1e-12)
    if acc:
        motion = power[:, acc].amax(dim=1)
        score = score * (1.0 - acc_suppression * motion).clamp_min(0.0)
    return torch.log(score + 1e-6)


@register_model
class SpectralConvNet(nn.Module):
    """A CNN along the frequency axis of every channel's log spectrum, scoring each rate bin.

    `RateSpectrum` of all channels (log of the normalised power, floored at ``floor``), then
    ``len(dilations)`` blocks of ``Conv1d(width, kernel_size, dilation)``-BN-ReLU over the
    bins, then a 1x1 convolution to one logit per bin. Convolving along frequency makes the
    rule the same at every rate (a motion peak near the PPG peak matters the same way at 90
    and at 160 bpm); dilations let it see harmonics and the accelerometer's peaks far away.

    With ``ppg_channels`` (and ``acc_channels``) the `SpectralPeak` score of those channels is
    one more input and, times a learned weight (initially ``prior_weight``), is added to the
    output: the network starts from the classical rule and learns corrections to it.
    """

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        fs: float | None = None,
        width: int = 16,
        dilations: Sequence[int] = (1, 2, 4, 8, 16),
        kernel_size: int = 3,
        floor: float = 1e-3,
        ppg_channels: Sequence[int] = (),
        acc_channels: Sequence[int] = (),
        prior_weight: float = 0.1,
        bin_low: float = 30.0,
        bin_high: float = 230.0,
        bin_width: float = 1.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or not dilations or min(dilations) < 1 or floor <= 0:
            raise RecipeError(
                f"SpectralConvNet needs an odd kernel_size, dilations >= 1 and floor > 0; got "
                f"kernel_size={kernel_size}, dilations={list(dilations)}, floor={floor}"
            )
        self.value_bins = ValueBins(bin_low, bin_high, bin_width)
        self.spectrum = _front_end("SpectralConvNet", fs, input_length, out_size, self.value_bins)
        self.log_floor = math.log(floor)
        self.floor = floor
        self.ppg = _channels("ppg_channels", ppg_channels, in_channels)
        self.acc = _channels("acc_channels", acc_channels, in_channels)
        self.prior_weight = nn.Parameter(torch.tensor(float(prior_weight))) if self.ppg else None
        layers: list[nn.Module] = []
        inputs = in_channels + (1 if self.ppg else 0)
        for dilation in dilations:
            padding = dilation * (kernel_size // 2)
            layers += [
                nn.Conv1d(inputs, width, kernel_size, padding=padding, dilation=dilation),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
            ]
            inputs = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv1d(inputs, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, bins)`` logits."""
        power = self.spectrum(x)
        spectra = torch.log(power + self.floor) - self.log_floor / 2
        if self.prior_weight is None:
            return self.head(self.body(spectra))[:, 0]
        prior = peak_scores(power, self.ppg, self.acc)
        inputs = torch.cat([spectra, prior[:, None] - self.log_floor / 2], dim=1)
        return self.head(self.body(inputs))[:, 0] + self.prior_weight * prior
