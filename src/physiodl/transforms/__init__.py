"""Pure numpy/scipy transforms: each maps a `SignalSet` (or a numpy batch) to a new one."""

from physiodl.transforms.augment import add_noise, amplitude_scale, time_shift
from physiodl.transforms.channels import select_channels
from physiodl.transforms.filters import bandpass, resample, resample_array
from physiodl.transforms.normalise import Normaliser, fit_normaliser
from physiodl.transforms.spectral import spectrogram, spectrogram_frequencies

__all__ = [
    "Normaliser",
    "add_noise",
    "amplitude_scale",
    "bandpass",
    "fit_normaliser",
    "resample",
    "resample_array",
    "select_channels",
    "spectrogram",
    "spectrogram_frequencies",
    "time_shift",
]
