"""`FeaturePipeline`: a model's preprocessing, identical at training and prediction time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from physiodl.errors import DataError
from physiodl.recipes import FeaturesConfig
from physiodl.signalset import SignalSet
from physiodl.transforms.channels import select_channels
from physiodl.transforms.filters import bandpass, resample
from physiodl.transforms.normalise import Normaliser, fit_normaliser
from physiodl.transforms.rr_intervals import append_rr_channel
from physiodl.transforms.spectral import LOG_FLOOR, spectrogram

_NORMALISER_KIND = {
    "per_frequency": "per_channel",
    "per_channel": "per_channel",
    "global": "global",
}


@dataclass(frozen=True)
class FeaturePipeline:
    """Select channels, resample, band-pass, RR intervals or spectrogram (each optional), then
    normalise.

    ``input_fs`` is the sampling rate the steps expect: recordings at another rate are resampled
    to it first, so a model trained at 300 Hz can label a 500 Hz recording. The normaliser is fitted
    on training records only (`fit`) and travels inside the checkpoint (`to_dict`).
    """

    config: FeaturesConfig
    input_fs: float
    normaliser: Normaliser | None = None

    @classmethod
    def for_data(cls, config: FeaturesConfig, data_fs: float) -> FeaturePipeline:
        return cls(config=config, input_fs=config.resample or data_fs)

    def transform(self, ss: SignalSet) -> SignalSet:
        """The deterministic steps (no normalisation); cacheable per ``cache_key``."""
        if self.config.channels is not None:
            ss = select_channels(ss, self.config.channels)
        band = self.config.bandpass
        if band is not None and band[1] >= ss.fs / 2:
            raise DataError(
                f"recordings at {ss.fs:g} Hz hold nothing above {ss.fs / 2:g} Hz, but the model's "
                f"band reaches {band[1]:g} Hz; give the recording's true sampling rate (--fs) "
                f"or record at more than {2 * band[1]:g} Hz"
            )
        if ss.fs != self.input_fs:
            ss = resample(ss, self.input_fs)
        if self.config.bandpass is not None:
            ss = bandpass(ss, *self.config.bandpass)
        if self.config.rr_intervals:
            ss = append_rr_channel(ss)
        if self.config.spectrogram is not None:
            spec = self.config.spectrogram
            ss = spectrogram(ss, nperseg=spec.nperseg, noverlap=spec.noverlap, log=spec.log)
        return ss

    def changes(self, fs: float) -> bool:
        """Whether `transform` changes recordings sampled at ``fs`` (else they pass as they are)."""
        steps = (self.config.bandpass, self.config.spectrogram)
        changed = self.config.rr_intervals or any(step is not None for step in steps)
        return fs != self.input_fs or changed

    def fit(self, train: SignalSet) -> FeaturePipeline:
        """A copy whose normaliser is fitted on already-transformed training records."""
        if self.config.normalise == "none":
            return self
        kind = _NORMALISER_KIND[self.config.normalise]
        return replace(self, normaliser=fit_normaliser(train, kind=kind))

    def normalise(self, ss: SignalSet) -> SignalSet:
        return ss if self.normaliser is None else self.normaliser.apply(ss)

    def __call__(self, ss: SignalSet) -> SignalSet:
        """All steps: what a fitted model's input must go through."""
        return self.normalise(self.transform(ss))

    def cache_key(self) -> dict[str, Any]:
        """What determines `transform`'s output, for the feature cache."""
        keys = {"resample", "bandpass", "spectrogram"}
        # absent when unset: earlier cache keys still hold
        if self.config.channels is not None:
            keys.add("channels")
        if self.config.rr_intervals:
            keys.add("rr_intervals")
        key = {"input_fs": self.input_fs, **self.config.model_dump(mode="json", include=keys)}
        if self.config.spectrogram is not None and self.config.spectrogram.log:
            key["log_floor"] = LOG_FLOOR  # the log was log1p before: keeps old caches apart
        return key

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json"),
            "input_fs": self.input_fs,
            "normaliser": None if self.normaliser is None else self.normaliser.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePipeline:
        normaliser = data.get("normaliser")
        return cls(
            config=FeaturesConfig.model_validate(data["config"]),
            input_fs=float(data["input_fs"]),
            normaliser=None if normaliser is None else Normaliser.from_dict(normaliser),
        )
