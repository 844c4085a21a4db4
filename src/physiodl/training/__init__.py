"""The training engine: Lightning module, data module, callbacks and `fit`."""

from physiodl.training.callbacks import EpochHistory, RngStateCheckpoint, write_history
from physiodl.training.data import ChunkBatch, ChunkDataModule, EpochBatches, WindowDataset
from physiodl.training.engine import FitConfig, FitResult, fit, predict_batches
from physiodl.training.module import OptimizerSettings, SignalModule

__all__ = [
    "ChunkBatch",
    "ChunkDataModule",
    "EpochBatches",
    "EpochHistory",
    "FitConfig",
    "FitResult",
    "OptimizerSettings",
    "RngStateCheckpoint",
    "SignalModule",
    "WindowDataset",
    "fit",
    "predict_batches",
    "write_history",
]
