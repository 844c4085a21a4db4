"""Heart-rate models: the seed's CNN as the seed prints it, the spectral front end and rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physiodl.errors import RecipeError
from physiodl.models import build_model
from physiodl.models.spectral import RateSpectrum
from physiodl.tracking import ValueBins

FS, LENGTH = 25.0, 200


@pytest.mark.parametrize(
    ("channels", "batch_norm", "expected"),
    [(1, False, 87_233), (4, False, 87_473), (4, True, 87_953)],  # the seed: 87.2 K, 87.5 K, 88.0 K
)
def test_seed_cnn_has_the_seeds_layers_and_parameter_counts(
    channels: int, batch_norm: bool, expected: int
) -> None:
    model = build_model(
        "ConvDenseNet",
        in_channels=channels,
        out_size=1,
        input_length=LENGTH,
        conv_layers=4,
        dense_layers=3,
        batch_norm=batch_norm,
        dropout=0.5 if batch_norm else 0.0,
    )
    assert sum(p.numel() for p in model.parameters()) == expected
    names = [type(m).__name__ for m in model.layers]
    assert names.count("Conv1d") == 4 and names.count("MaxPool1d") == 3
    assert names.count("Linear") == 3 and names.count("Dropout") == (2 if batch_norm else 0)
    assert model(torch.randn(2, channels, LENGTH)).shape == (2, 1)


def _window(*components: tuple[float, float], channels: int = 1) -> torch.Tensor:
    """``(1, channels, LENGTH)`` sums of sinusoids ``(rate per minute, amplitude)``."""
    t = np.arange(LENGTH) / FS
    x = sum(a * np.sin(2 * np.pi * rate / 60 * t + 0.3) for rate, a in components)
    return torch.tensor(np.tile(x, (1, channels, 1)), dtype=torch.float32)


def test_rate_spectrum_peaks_at_the_sinusoids_rate() -> None:
    bins = ValueBins(30, 230, 1)
    power = RateSpectrum(FS, LENGTH, bins)(_window((93.0, 1.0)))
    assert power.shape == (1, 1, 201)
    assert bins.centres[int(power[0, 0].argmax())] == 93.0
    assert power.max().item() == pytest.approx(1.0)


def test_spectral_peak_suppresses_the_accelerometers_rate() -> None:
    ppg = _window((80.0, 1.0), (150.0, 2.0))  # pulse at 80 bpm, a stronger motion artefact
    acc = _window((150.0, 1.0), channels=3)  # the arm swings at 150 per minute
    x = torch.cat([ppg, acc], dim=1)
    bins = {"bin_low": 30.0, "bin_high": 230.0}
    ppg_only = build_model(
        "SpectralPeak", in_channels=4, out_size=201, input_length=LENGTH, fs=FS, **bins
    )
    with_acc = build_model(
        "SpectralPeak",
        in_channels=4,
        out_size=201,
        input_length=LENGTH,
        fs=FS,
        acc_channels=[1, 2, 3],
        **bins,
    )
    assert 30 + int(ppg_only(x).argmax()) == 150
    assert 30 + int(with_acc(x).argmax()) == 80
    assert list(with_acc.parameters()) == []


def test_spectral_models_check_their_signal_and_bins() -> None:
    kwargs = {"in_channels": 5, "input_length": LENGTH, "fs": FS}
    with pytest.raises(RecipeError, match=r"scores 100 bins but .* give 201"):
        build_model("SpectralConvNet", out_size=100, **kwargs)
    with pytest.raises(RecipeError, match="Nyquist rate 750"):
        build_model("SpectralPeak", out_size=771, bin_high=800.0, **kwargs)
    with pytest.raises(RecipeError, match="sampling rate and a fixed window length"):
        build_model("SpectralPeak", in_channels=5, out_size=201)
    with pytest.raises(RecipeError, match=r"acc_channels = \[7\]"):
        build_model("SpectralPeak", out_size=201, acc_channels=[7], **kwargs)


def test_spectral_cnn_with_the_classical_prior_starts_near_the_rule() -> None:
    torch.manual_seed(0)
    x = torch.cat([_window((80.0, 1.0), (150.0, 2.0)), _window((150.0, 1.0), channels=3)], 1)
    model = build_model(
        "SpectralConvNet",
        in_channels=4,
        out_size=201,
        input_length=LENGTH,
        fs=FS,
        ppg_channels=[0],
        acc_channels=[1, 2, 3],
        prior_weight=100.0,  # the rule dominates the untrained network
    )
    model.eval()
    assert 30 + int(model(x).argmax()) == 80
    assert model.prior_weight is not None and model.prior_weight.requires_grad
