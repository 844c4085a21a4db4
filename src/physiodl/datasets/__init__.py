"""Registered datasets: what they are, where they live, how to load and fetch them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from physiodl.datasets import (
    cinc2017,
    ieee_spc2015,
    peaks_npz,
    ppg_dalia,
    synthetic,
    synthetic_peaks,
)
from physiodl.errors import DataError, DownloadError, RecipeError
from physiodl.io import paths
from physiodl.io.cinc_format import LAYOUT as CINC_LAYOUT
from physiodl.io.download import download, file_sha256, safe_extract
from physiodl.signalset import SignalSet


@dataclass(frozen=True)
class RemoteFile:
    """A file to download; ``sha256`` or ``size`` is ``None`` where not published."""

    url: str
    filename: str
    sha256: str | None
    size: int | None


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Attributes:
        name: registry name used in recipes and the CLI.
        title: one-line description.
        task: ``"classification"``, ``"regression"``, ``"detection"`` or ``"forecasting"``.
        load: ``load(path, **options) -> SignalSet`` (no ``path`` for generated data).
        default_path: path relative to the data directory; ``None`` for generated data.
        remote_files: what ``fetch_dataset`` downloads into ``default_path``'s folder.
        layout: human-readable text of the expected files.
        citation: how to cite the data.
        license: the data's license.
        known_sha256: SHA-256 of known local copies -> what they are.
        files_dataset: for generated data, the dataset that reads it once saved to files
            (what `physiodl evaluate` uses for a checkpoint trained on generated data).
    """

    name: str
    title: str
    task: str
    load: Callable[..., SignalSet]
    default_path: str | None
    remote_files: tuple[RemoteFile, ...] = ()
    layout: str = ""
    citation: str = ""
    license: str = ""
    known_sha256: dict[str, str] = field(default_factory=dict)
    files_dataset: str | None = None


PV_FINDER_CITATION = (
    "Fang R, Schreiner HF, Sokoloff MD, Weisser C, Williams M. A hybrid deep learning approach "
    "to vertexing. J. Phys.: Conf. Ser. 1525 (2020) 012079, arXiv:1906.08306; Akar S et al. "
    "Progress in developing a hybrid deep learning algorithm for identifying and locating "
    "primary vertices. EPJ Web Conf. 251 (2021) 04012, arXiv:2007.01023"
)

CINC2017_URL = "https://physionet.org/files/challenge-2017/1.0.0/training2017.zip"
CINC2017_SIZE = 99_226_822
COURSE_SUBSET_SHA256 = "6348684c933559c3eced2fffa02eca52fc80a8afecaa14bf5551650bbf39bf6b"

DATASETS: dict[str, DatasetInfo] = {
    "cinc2017": DatasetInfo(
        name="cinc2017",
        title="PhysioNet/CinC Challenge 2017: AF classification from a short single-lead ECG",
        task="classification",
        load=cinc2017.load,
        default_path="cinc2017/training2017.zip",
        remote_files=(RemoteFile(CINC2017_URL, "training2017.zip", None, CINC2017_SIZE),),
        layout=(
            f"<data dir>/cinc2017/\n{CINC_LAYOUT}\n"
            f"The official zip ({CINC2017_URL}, {CINC2017_SIZE:,} bytes, 8,528 records) is "
            "verified by its size only: its SHA-256 is not recorded in physiodl. The course "
            f"subset (6,822 records, 79,166,078 bytes) is recognised by its SHA-256."
        ),
        citation=(
            "Clifford GD, Liu C, Moody B, Lehman L, Silva I, Li Q, Johnson AEW, Mark RG. AF "
            "classification from a short single lead ECG recording: the PhysioNet/Computing in "
            "Cardiology Challenge 2017. Computing in Cardiology 2017;44. "
            "https://doi.org/10.22489/CinC.2017.065-469"
        ),
        license="Open Data Commons Attribution License v1.0 (ODC-By 1.0)",
        known_sha256={
            COURSE_SUBSET_SHA256: "the course subset (6,822 of 8,528 records)",
        },
    ),
    "ieee_spc2015": DatasetInfo(
        name="ieee_spc2015",
        title="IEEE Signal Processing Cup 2015: heart rate from wrist PPG + accelerometer",
        task="regression",
        load=ieee_spc2015.load,
        default_path="ieee-spc2015",
        layout=f"<data dir>/{ieee_spc2015.LAYOUT}",
        citation=(
            "Zhang Z, Pi Z, Liu B. TROIKA: A general framework for heart rate monitoring using "
            "wrist-type photoplethysmographic signals during intensive physical exercise. IEEE "
            "Trans Biomed Eng 2015;62(2):522-531. https://doi.org/10.1109/TBME.2014.2359372"
        ),
        license=(
            "free for the Signal Processing Cup or academic research, citing the data "
            "(Training_data/Readme)"
        ),
    ),
    "ppg_dalia": DatasetInfo(
        name="ppg_dalia",
        title="PPG-DaLiA: heart rate from wrist PPG + accelerometer in daily-life activities",
        task="regression",
        load=ppg_dalia.load,
        default_path="ppg_dalia",
        remote_files=(RemoteFile(ppg_dalia.URL, "ppg+dalia.zip", None, None),),
        layout=(
            f"<data dir>/{ppg_dalia.LAYOUT}\nThe UCI download ({ppg_dalia.URL}) has no published "
            "checksum: it is not verified. physiodl's loader is tested on generated files in "
            "this format only (the real data was not available to its developers)."
        ),
        citation=(
            "Reiss A, Indlekofer I, Schmidt P, Van Laerhoven K. Deep PPG: Large-Scale Heart Rate "
            "Estimation with Convolutional Neural Networks. Sensors 2019;19(14):3079. "
            "https://doi.org/10.3390/s19143079"
        ),
        license="Creative Commons Attribution 4.0 International (CC BY 4.0), as listed by UCI",
    ),
    "synthetic-ecg": DatasetInfo(
        name="synthetic-ecg",
        title="Synthetic single-lead ECG: sinus rhythm, AF, other rhythm, noisy",
        task="classification",
        load=synthetic.load,
        default_path=None,
        layout="generated in memory by physiodl.datasets.synthetic; no files",
        citation=(
            "McSharry PE, Clifford GD, Tarassenko L, Smith LA. A dynamical model for "
            "generating synthetic electrocardiogram signals. IEEE Trans Biomed Eng "
            "2003;50(3):289-294 (the Gaussian-bump beat shape)"
        ),
        license="generated data, no restrictions",
    ),
    "peaks-npz": DatasetInfo(
        name="peaks-npz",
        title="Peak-finding events in the seed's .npz form: X (N, C, bins), y (N, bins)",
        task="detection",
        load=peaks_npz.load,
        default_path="pv-finder",
        layout=peaks_npz.LAYOUT,
        citation=PV_FINDER_CITATION,
        license="that of the files",
    ),
    "synthetic-peaks": DatasetInfo(
        name="synthetic-peaks",
        title="Synthetic PV-finder-like events: 4 channels x 4,000 bins, per-bin peak targets",
        task="detection",
        load=synthetic_peaks.load,
        default_path=None,
        layout=(
            "generated in memory by physiodl.datasets.synthetic_peaks; save files with "
            "`physiodl data synth peaks --events N --seed S --out DIR` (read them as peaks-npz)"
        ),
        citation=PV_FINDER_CITATION + " (the setting the generator imitates)",
        license="generated data, no restrictions",
        files_dataset="peaks-npz",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The registered dataset ``name``; a `RecipeError` lists the names otherwise."""
    if name not in DATASETS:
        raise RecipeError(f"unknown dataset {name!r}; registered: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(
    name: str,
    path: str | Path | None = None,
    data_dir: str | Path | None = None,
    **options: Any,
) -> SignalSet:
    """Load dataset ``name`` from ``path`` (default: its ``default_path`` in the data dir).

    ``path`` is absolute or relative to ``data_dir`` (``--data-dir`` > ``PHYSIODL_DATA`` >
    the user cache). ``options`` go to the dataset's ``load``; an option it does not take
    is a `RecipeError` naming the allowed ones (a loader taking ``**settings`` names them).
    """
    info = dataset_info(name)
    parameters = inspect.signature(info.load).parameters
    allowed = [p for p in parameters if p != "path"]
    unknown = sorted(set(options) - set(allowed))
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if unknown and not takes_any:  # a loader with **settings checks their names itself
        raise RecipeError(
            f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )
    resolved = dataset_path(name, path, data_dir)
    return info.load(**options) if resolved is None else info.load(resolved, **options)


def dataset_path(
    name: str, path: str | Path | None = None, data_dir: str | Path | None = None
) -> Path | None:
    """Where ``load_dataset`` reads ``name`` from; ``None`` for generated data.

    ``path`` is absolute or relative to ``data_dir``; without it, ``default_path`` in the
    data directory, or the folder it unzips to. A missing path is a `DataError` that says
    how to fetch the data and which layout is expected.
    """
    info = dataset_info(name)
    if info.default_path is None:
        if path is not None and str(path) != "":
            raise RecipeError(f"dataset {name!r} is generated; it takes no path (got {path!r})")
        return None
    root = paths.data_dir(data_dir)
    if path is None or str(path) == "":  # the zip, else the folder it unzips to
        path = info.default_path
        unzipped = root / Path(path).with_suffix("")
        if not (root / path).exists() and unzipped.is_dir():
            path = unzipped
    try:
        return paths.resolve_data_path(path, root)
    except DataError as err:
        raise DataError(
            f"{err}.\nGet it with `physiodl data fetch {name}` or put it there by hand; "
            f"expected layout:\n{info.layout}"
        ) from None


def dataset_status(name: str, data_dir: str | Path | None = None) -> dict[str, Any]:
    """What is present locally for ``name``: path, kind, size and whether it is recognised.

    Keys: ``name``, ``title``, ``task``, ``license``, ``citation``, ``remote`` (the files
    ``fetch`` downloads), ``path``, ``present``, ``kind`` (``"zip"``, ``"folder"``,
    ``"generated"`` or ``None``), ``bytes``, ``sha256``, ``recognised`` (what the file is,
    if known), ``checksum_ok`` (``True`` for a known SHA-256, ``None`` where there is
    nothing to compare with, e.g. a folder or a size-only match; ``False`` otherwise) and
    ``summary`` (one short line for listings).
    """
    info = dataset_info(name)
    status: dict[str, Any] = {
        "name": info.name,
        "title": info.title,
        "task": info.task,
        "license": info.license,
        "citation": info.citation,
        "remote": [asdict(remote) for remote in info.remote_files],
        "path": None,
        "present": False,
        "kind": None,
        "bytes": None,
        "sha256": None,
        "recognised": None,
        "checksum_ok": None,
        "summary": "not present",
    }
    if info.default_path is None:
        status.update(present=True, kind="generated", summary="generated, no files")
        return status
    file = paths.data_dir(data_dir) / info.default_path
    folder = file.with_suffix("")
    status["path"] = str(file)
    if file.is_file():
        sha, size = file_sha256(file), file.stat().st_size
        recognised, ok = _recognise(info, file.name, sha, size)
        status.update(present=True, kind="zip", bytes=size, sha256=sha)
        status.update(recognised=recognised, checksum_ok=ok)
        status["summary"] = f"zip {size / 2**20:.1f} MiB, {recognised or 'not a known version'}"
    elif folder.is_dir():
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        status.update(path=str(folder), present=True, kind="folder", bytes=size)
        status["summary"] = f"folder {size / 2**20:.1f} MiB (not checksummed)"
    return status


def _recognise(
    info: DatasetInfo, filename: str, sha: str, size: int
) -> tuple[str | None, bool | None]:
    """What a local file is, and whether its checksum matches a known one."""
    if sha in info.known_sha256:
        return info.known_sha256[sha], True
    for remote in info.remote_files:
        if remote.filename != filename:
            continue
        if remote.sha256 == sha:
            return "the official file", True
        if remote.sha256 is None and remote.size == size:
            return "the official file (by size; no SHA-256 to compare)", None
    return None, False


def fetch_dataset(
    name: str,
    dest_dir: str | Path | None = None,
    progress: bool = True,
    *,
    extract: bool = True,
) -> Path:
    """Download ``name``'s files into ``<dest_dir>/<default_path folder>/`` and extract zips.

    ``dest_dir`` is a data directory (default: ``--data-dir`` > ``PHYSIODL_DATA`` > the
    user cache), so the result loads with ``load_dataset(name, data_dir=dest_dir)``. Files
    already present and verified are kept; a zip is extracted safely beside itself unless
    its folder already exists (``extract=False`` skips it; loaders read zips directly).
    Returns the dataset path (``dest_dir / default_path``).
    """
    info = dataset_info(name)
    if info.default_path is None:
        raise RecipeError(f"dataset {name!r} is generated in memory; there is nothing to fetch")
    if not info.remote_files:
        raise RecipeError(
            f"dataset {name!r} has no download source known to physiodl; put its files in place "
            f"by hand, in this layout:\n{info.layout}"
        )
    root = paths.data_dir(dest_dir)
    default = Path(info.default_path)
    target = root / (default if default.suffix == "" else default.parent)  # a folder or a file
    for remote in info.remote_files:
        dest = target / remote.filename
        try:
            download(remote.url, dest, sha256=remote.sha256, size=remote.size, progress=progress)
        except DownloadError as err:
            raise DownloadError(f"{err}\nExpected layout:\n{info.layout}") from None
        if extract and dest.suffix == ".zip" and not dest.with_suffix("").exists():
            safe_extract(dest, target)
    return root / info.default_path


__all__ = [
    "DATASETS",
    "DatasetInfo",
    "RemoteFile",
    "dataset_info",
    "dataset_path",
    "dataset_status",
    "fetch_dataset",
    "load_dataset",
]
