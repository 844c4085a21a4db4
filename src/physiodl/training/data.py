"""`ChunkDataModule`: windows of in-memory `SignalSet`s as batches for Lightning.

Every batch is planned in the main process by a sampler that yields `ChunkBatch` keys (which
records, where each window starts, how long); the dataset turns a key into tensors with one
vectorised gather. A plan depends only on ``(seed, epoch)``, so a resumed run sees exactly the
data of an uninterrupted one. Under DDP, Lightning wraps the sampler in its
``DistributedSamplerWrapper``, which forwards ``set_epoch`` and hands each rank every
``world_size``-th batch: the ranks' data are disjoint and the same after a resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader, Dataset, Sampler

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.transforms.augment import Augmentation
from physiodl.transforms.balance import BALANCE_CHOICES, Balance, oversample_indices
from physiodl.transforms.windows import PackedSignals, chunk_index, random_starts
from physiodl.window_targets import trace_windows


class ChunkBatch(NamedTuple):
    """A batch's key: window ``i`` is ``length`` steps of record ``owner[i]`` from ``starts[i]``.

    ``scales`` (per-window rate targets only): window ``i`` is resampled from ``scales[i]``
    times as long a stretch around the same centre, which multiplies every rate in it, and
    its target, by ``scales[i]``. ``augment_seed`` seeds the batch's augmentation (training
    only; -1: none).
    """

    owner: np.ndarray
    starts: np.ndarray
    length: int
    scales: np.ndarray | None = None
    augment_seed: int = -1


class EpochBatches(Sampler[ChunkBatch]):
    """Yields the batches that ``plan(epoch)`` returns; Lightning calls `set_epoch` each epoch.

    ``epoch`` must start at the epoch about to run: Lightning creates the first epoch's
    iterator before it calls `set_epoch` (and on resume before it restores its loops).
    """

    def __init__(
        self, plan: Callable[[int], list[ChunkBatch]], n_batches: int, epoch: int = 0
    ) -> None:
        self.plan = plan
        self.n_batches = n_batches
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[ChunkBatch]:
        batches = self.plan(self.epoch)
        if len(batches) != self.n_batches:
            raise RuntimeError(f"planned {len(batches)} batches, announced {self.n_batches}")
        return iter(batches)

    def __len__(self) -> int:
        return self.n_batches


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Turns a `ChunkBatch` into ``(x (b, C, length), targets)`` tensors.

    Targets by kind: ``codes`` (int64, one per record), ``values`` (float32 ``(b, k)``),
    ``bins`` (per-sample float32 ``(b, length)``, NaN past a record's end), ``windows`` (one
    float32 value per window, ``(b, 1)``: value ``i`` of a record's trace belongs to the window
    starting at ``i * target_stride``) and ``forecast`` (the ``horizon`` steps after each
    window of the first ``forecast_channels`` channels).
    """

    def __init__(
        self,
        signals: PackedSignals,
        targets: np.ndarray | PackedSignals,
        target_kind: str,
        horizon: int = 0,
        forecast_channels: int = 1,
        target_stride: int = 1,
        augmentation: Augmentation | None = None,
    ) -> None:
        self.signals = signals
        self.targets = targets
        self.target_kind = target_kind
        self.horizon = horizon
        self.forecast_channels = forecast_channels
        self.target_stride = target_stride
        self.augmentation = augmentation

    def __getitem__(self, batch: ChunkBatch) -> tuple[torch.Tensor, torch.Tensor]:
        owner, starts, length = batch.owner, batch.starts, batch.length
        if batch.scales is not None:
            x = _rescaled_windows(self.signals, owner, starts, length, batch.scales)
            assert isinstance(self.targets, PackedSignals)
            values = self.targets.data[self.targets.offsets[owner] + starts // self.target_stride]
            y = (values * batch.scales[:, None]).astype(np.float32)
        elif self.target_kind == "forecast":
            full = self.signals.chunks(owner, starts, length + self.horizon, fill=np.nan)
            x = np.nan_to_num(full[:, :, :length], nan=0.0)
            y = np.ascontiguousarray(full[:, : self.forecast_channels, length:])
        else:
            x = self.signals.chunks(owner, starts, length)
            if self.target_kind == "windows":
                assert isinstance(self.targets, PackedSignals)
                y = self.targets.data[self.targets.offsets[owner] + starts // self.target_stride]
            elif isinstance(self.targets, PackedSignals):
                y = self.targets.chunks(owner, starts, length, fill=np.nan)[:, 0]
            else:
                y = self.targets[owner]
        if self.augmentation is not None and batch.augment_seed >= 0:
            x = self.augmentation(x, np.random.default_rng(batch.augment_seed))
        return torch.from_numpy(x), torch.from_numpy(y)


class ChunkDataModule(pl.LightningDataModule):
    """Training and validation batches of windows, deterministic per ``(seed, epoch)``.

    Args:
        train: training records, already normalised.
        val: validation records, normalised with the training statistics.
        length: window length in time steps; ``None`` = whole records (training batches group
            records of similar length, cropped to the batch's shortest; validation batches group
            records of equal length, uncropped).
        random: training draws one random window per (oversampled) record every epoch (the
            seed's random-chunk augmentation); else all windows of the records, oversampled at
            window level (the seed's pre-chunked set). With ``length=None``: random crop offsets.
        stride: step between training windows in pre-chunked mode (default ``length``).
            Validation always uses all non-overlapping windows, each once.
        balance: ``oversample`` repeats minority classes to the largest count (the seed);
            ``class_weights`` leaves sampling alone (the weights belong in the task's loss);
            ``none``.
        batch_size: windows per batch (per device under DDP).
        seed: seeds oversampling and each epoch's order and window offsets.
        num_workers: DataLoader worker processes (0 = gather in the training process; the
            gather is vectorised, so 0 is usually fastest).
        augmentation: applied to every training batch, seeded per ``(seed, epoch, batch)``.
        horizon: forecasting only: predict the ``horizon`` steps after each window of the first
            ``forecast_channels`` channels; the records' own targets are not used.
        forecast_channels: forecasting only: how many leading channels are predicted.
        target_stride: per-window targets (e.g. a heart-rate trace): each record's targets
            are a 1-D trace whose value ``i`` belongs to the window of ``length`` steps
            starting at ``i * target_stride``. Training and validation use exactly these
            windows (training leaves out those whose value is NaN); ``stride`` and ``random``
            do not apply.
        rate_scale: per-window rate targets only (heart rate): each training window is
            resampled from a stretch ``s`` times its length around the same centre, ``s``
            drawn log-uniformly from ``[1 / (1 + rate_scale), 1 + rate_scale]`` every epoch,
            and its target multiplied by ``s``: the rates seen in training spread out.

    Attributes:
        first_epoch: the epoch a resumed run starts with (`fit` reads it from the checkpoint).
    """

    def __init__(
        self,
        train: SignalSet,
        val: SignalSet,
        *,
        length: int | None,
        random: bool = False,
        stride: int | None = None,
        balance: Balance = "none",
        batch_size: int = 192,
        seed: int = 0,
        num_workers: int = 0,
        augmentation: Augmentation | None = None,
        horizon: int | None = None,
        forecast_channels: int = 1,
        target_stride: int | None = None,
        rate_scale: float | None = None,
    ) -> None:
        super().__init__()
        if balance not in BALANCE_CHOICES:
            raise RecipeError(f"balance = {balance!r} is not one of {', '.join(BALANCE_CHOICES)}")
        if length is not None and length < 1:
            raise RecipeError(f"chunks.length must be >= 1 or none, got {length}")
        if batch_size < 1:
            raise RecipeError(f"train.batch_size must be >= 1, got {batch_size}")
        if horizon is not None and not 1 <= forecast_channels <= train.n_channels:
            raise RecipeError(
                f"forecast_channels = {forecast_channels} must lie in 1..{train.n_channels} "
                "(the input channels)"
            )
        if horizon is not None and length is None:
            raise RecipeError("forecasting needs a fixed chunks.length (the input window)")
        if target_stride is not None and (length is None or random or target_stride < 1):
            raise RecipeError(
                "per-window targets need a fixed chunks.length, chunks.random = false and a "
                f"target stride >= 1 (got length={length}, random={random}, "
                f"target_stride={target_stride})"
            )
        if rate_scale is not None and (target_stride is None or not 0 < rate_scale < 1):
            raise RecipeError(
                f"rate_scale = {rate_scale} needs per-window rate targets and 0 < rate_scale < 1"
            )
        if train.n_channels != val.n_channels:
            raise DataError(
                f"training records have {train.n_channels} channels, validation records "
                f"{val.n_channels}; both must come from the same features"
            )
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"empty split: {len(train)} training and {len(val)} validation records")
        self.first_epoch = 0
        self.length = length
        self.random = random
        self.stride = stride
        self.balance = balance
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.horizon = horizon or 0
        self.target_stride = target_stride
        self.rate_scale = rate_scale
        self.target_kind = "forecast" if horizon else _target_kind(train, "training", target_stride)
        val_kind = _target_kind(val, "validation", target_stride)
        if self.target_kind != "forecast" and val_kind != self.target_kind:
            raise DataError("training and validation targets are of different kinds")
        if balance != "none" and self.target_kind != "codes":
            raise RecipeError(
                f"balance = {balance!r} needs class targets; use balance = 'none' for "
                f"{self.target_kind} targets"
            )
        self.augmentation = augmentation if augmentation and augmentation.active else None
        self.train_set = self._dataset(train, forecast_channels, self.augmentation)
        self.val_set = self._dataset(val, forecast_channels)
        self._train_lengths = self.train_set.signals.lengths - self.horizon
        self._train_items = self._training_items(train)
        self._val_batches = self._validation_batches(
            self.val_set.signals.lengths - self.horizon, val
        )

    @property
    def n_train_windows(self) -> int:
        """Training windows per epoch (after oversampling)."""
        return len(self._train_items[0])

    @property
    def n_train_batches(self) -> int:
        """Training batches per epoch (on one device)."""
        return math.ceil(self.n_train_windows / self.batch_size)

    def train_batches(self, epoch: int) -> list[ChunkBatch]:
        """The training batches of ``epoch``: a pure function of ``(seed, epoch)``."""
        rng = np.random.default_rng([self.seed, epoch])
        owner, starts = self._train_items
        order = rng.permutation(len(owner))
        owner, starts = owner[order], starts[order]
        if self.length is None:
            batches = self._whole_record_batches(owner, rng)
        else:
            if self.random:
                starts = random_starts(self._train_lengths, owner, self.length, rng)
            batches = _cut(owner, starts, self.length, self.batch_size)
            if self.rate_scale is not None:
                limit = np.log1p(self.rate_scale)
                scales = np.exp(rng.uniform(-limit, limit, size=len(owner)))
                batches = [
                    batch._replace(scales=scales[i : i + self.batch_size])
                    for i, batch in zip(range(0, len(owner), self.batch_size), batches, strict=True)
                ]
        if self.augmentation is None:
            return batches
        seeds = rng.integers(0, 2**62, size=len(batches))
        return [b._replace(augment_seed=int(s)) for b, s in zip(batches, seeds, strict=True)]

    def validation_batches(self) -> list[ChunkBatch]:
        """The validation batches, the same every epoch."""
        return self._val_batches

    def train_dataloader(self) -> DataLoader:
        # Lightning may create the first iterator before it calls set_epoch, and on resume even
        # before it restores its loops (e.g. to estimate the steps of a one-cycle schedule)
        epoch = self.first_epoch
        if self.trainer is not None:
            epoch = max(epoch, self.trainer.fit_loop.epoch_progress.current.processed)
        sampler = EpochBatches(self.train_batches, self.n_train_batches, epoch)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        batches = self._val_batches
        return self._loader(self.val_set, EpochBatches(lambda _: batches, len(batches)))

    def _loader(self, dataset: WindowDataset, sampler: EpochBatches) -> DataLoader:
        on_gpu = self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=on_gpu,
            # its own generator: creating an iterator then draws no number from torch's global
            # generator, whose state the training must own (dropout, exact resume)
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _dataset(
        self,
        data: SignalSet,
        forecast_channels: int,
        augmentation: Augmentation | None = None,
    ) -> WindowDataset:
        signals = PackedSignals.pack(data.signals)
        targets: np.ndarray | PackedSignals
        if self.target_kind == "forecast":
            targets = np.zeros(0, dtype=np.float32)
        elif self.target_kind == "windows":
            assert isinstance(data.targets, list)
            targets = PackedSignals.pack([np.asarray(t, dtype=np.float32) for t in data.targets])
        elif self.target_kind == "bins":
            assert isinstance(data.targets, list)
            per_sample = [np.asarray(t, dtype=np.float32) for t in data.targets]
            for record, t, n in zip(data.ids, per_sample, signals.lengths, strict=True):
                if t.shape != (n,):
                    raise DataError(
                        f"record {record!r}: per-sample targets have shape {t.shape}, the "
                        f"signal has {n} time steps; they must match"
                    )
            targets = PackedSignals.pack(per_sample)
        elif self.target_kind == "codes":
            targets = np.asarray(data.targets, dtype=np.int64)
        else:
            values = np.asarray(data.targets, dtype=np.float32)
            targets = values[:, None] if values.ndim == 1 else values
        return WindowDataset(
            signals,
            targets,
            self.target_kind,
            self.horizon,
            forecast_channels,
            target_stride=self.target_stride or 1,
            augmentation=augmentation,
        )

    def _training_items(self, train: SignalSet) -> tuple[np.ndarray, np.ndarray]:
        """``(owner, start)`` of every training window before per-epoch shuffling."""
        if self.target_kind == "windows":
            owner, starts = _reference_windows(train, self.target_stride or 1)
            values = np.concatenate([np.asarray(t, dtype=np.float32) for t in train.targets or []])
            known = ~np.isnan(values)
            if not known.any():
                raise DataError("no training window has a known target (all are NaN)")
            return owner[known], starts[known]
        if self.length is None or self.random:
            owner = np.arange(len(train), dtype=np.int64)
            starts = np.zeros(len(train), dtype=np.int64)
        else:
            owner, starts = chunk_index(self._train_lengths, self.length, self.stride)
        if self.balance == "oversample":  # class codes (checked in __init__)
            codes = np.asarray(train.targets, dtype=np.int64)[owner]
            chosen = oversample_indices(codes, np.random.default_rng(self.seed))
            owner, starts = owner[chosen], starts[chosen]
        return owner, starts

    def _whole_record_batches(
        self, owner: np.ndarray, rng: np.random.Generator
    ) -> list[ChunkBatch]:
        """Records of similar length together (±10 % jitter), cropped to the batch's shortest."""
        lengths = self._train_lengths[owner]
        jitter = np.exp(rng.uniform(-0.1, 0.1, size=len(owner)))
        owner = owner[np.argsort(lengths * jitter, kind="stable")]
        batches = []
        for i in rng.permutation(math.ceil(len(owner) / self.batch_size)):
            members = owner[i * self.batch_size : (i + 1) * self.batch_size]
            crop = int(self._train_lengths[members].min())
            slack = self._train_lengths[members] - crop
            starts = rng.integers(0, slack + 1) if self.random else np.zeros_like(slack)
            batches.append(ChunkBatch(members, starts.astype(np.int64), crop))
        return batches

    def _validation_batches(self, lengths: np.ndarray, val: SignalSet) -> list[ChunkBatch]:
        if self.target_kind == "windows":
            assert self.length is not None
            owner, starts = _reference_windows(val, self.target_stride or 1)
            return _cut(owner, starts, self.length, self.batch_size)
        if self.length is not None:
            owner, starts = chunk_index(lengths, self.length)
            return _cut(owner, starts, self.length, self.batch_size)
        batches = []
        for n in np.unique(lengths):
            same = np.flatnonzero(lengths == n)
            for i in range(0, len(same), self.batch_size):
                members = same[i : i + self.batch_size]
                batches.append(ChunkBatch(members, np.zeros_like(members), int(n)))
        return batches


def _target_kind(data: SignalSet, part: str, target_stride: int | None = None) -> str:
    if data.targets is None:
        raise DataError(f"the {part} records have no targets; a labelled dataset is needed")
    if target_stride is not None:
        if not isinstance(data.targets, list) or any(np.ndim(t) != 1 for t in data.targets):
            raise DataError(
                f"per-window targets of the {part} records must be one 1-D trace per record"
            )
        return "windows"
    if isinstance(data.targets, list):
        return "bins"
    return "codes" if np.asarray(data.targets).dtype.kind in "iu" else "values"


def _rescaled_windows(
    signals: PackedSignals,
    owner: np.ndarray,
    starts: np.ndarray,
    length: int,
    scales: np.ndarray,
) -> np.ndarray:
    """``(n, channels, length)`` windows linearly resampled from ``scales`` times as long
    stretches around the windows' centres (positions past a record's ends repeat its edge)."""
    steps = (np.arange(length) - (length - 1) / 2)[None, :] * scales[:, None]
    positions = starts[:, None] + (length - 1) / 2 + steps
    last = (signals.lengths[owner] - 1)[:, None]
    positions = np.clip(positions, 0, last)
    below = np.minimum(np.floor(positions).astype(np.int64), last - 1).clip(min=0)
    fraction = (positions - below)[..., None].astype(np.float32)
    base = signals.offsets[owner][:, None] + below
    above = np.minimum(below + 1, last) + signals.offsets[owner][:, None]
    values = signals.data[base] * (1 - fraction) + signals.data[above] * fraction
    return np.ascontiguousarray(values.transpose(0, 2, 1), dtype=np.float32)


def _reference_windows(data: SignalSet, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, start)`` of the window of every value of the records' target traces."""
    return trace_windows([len(t) for t in data.targets or []], stride)


def _cut(owner: np.ndarray, starts: np.ndarray, length: int, batch_size: int) -> list[ChunkBatch]:
    """Consecutive batches of ``batch_size`` windows (the last one may be smaller)."""
    return [
        ChunkBatch(owner[i : i + batch_size], starts[i : i + batch_size], length)
        for i in range(0, len(owner), batch_size)
    ]
