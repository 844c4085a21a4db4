"""The ``physiodl`` command: run recipes, evaluate and apply checkpoints, manage data."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from physiodl import __version__
from physiodl.errors import PhysioDLError

log = logging.getLogger("physiodl")

EPILOG = """examples:
  physiodl run recipes/af2017.toml --quick
  physiodl run recipes/af2017.toml --set train.max_epochs=5 trainer.devices=2 trainer.strategy=ddp
  physiodl tune recipes/peaks-tune.toml --trials 10
  physiodl data synth peaks --events 1000 --seed 7 --out heldout/
  physiodl evaluate runs/af2017/<run>/models/resnet/best.ckpt --data-dir path/to/training2017.zip
  physiodl predict runs/af2017/<run>/models/resnet/best.ckpt A00001.hea my_ecg.csv --fs 250
  physiodl predict runs/hr-ppg/<run>/models/spectral-cnn/best.ckpt TEST_S01_T01.mat --format csv
  physiodl data info cinc2017
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="physiodl",
        description="Train, compare and use deep networks on 1-D physiological signals.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"physiodl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_dir_help = "data directory (default: $PHYSIODL_DATA, else the user cache)"

    run = sub.add_parser("run", help="run a recipe: train, evaluate, compare, report")
    run.add_argument("recipe", type=Path, help="recipe TOML file, e.g. recipes/af2017.toml")
    run.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override recipe values, e.g. train.max_epochs=3 trainer.devices=2",
    )
    run.add_argument("--quick", action="store_true", help="apply the recipe's [quick] settings")
    run.add_argument("--resume", action="store_true", help="continue the newest interrupted run")
    run.add_argument("--models", help="comma-separated model names to run (default: all)")
    run.add_argument("--data-dir", type=Path, help=data_dir_help)
    run.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default: ./runs")
    run.add_argument("--no-cache", action="store_true", help="recompute features")

    tune = sub.add_parser(
        "tune",
        help="hyperparameter search (Optuna) from a recipe's [tune] table",
        description="Run trials of the recipe's [tune] search space and write the study's "
        "report (trials, best values, parameter importances) to <runs-dir>/<recipe name>/. "
        "Workers on several machines share one study through --storage (any database URL "
        "Optuna accepts) and the same --study name.",
    )
    tune.add_argument("recipe", type=Path, help="recipe TOML file with a [tune] table")
    tune.add_argument("--trials", type=int, help="trials for this worker (0: only the report)")
    tune.add_argument(
        "--storage",
        help="Optuna storage URL, e.g. postgresql://user:pw@host/db "
        "(default: sqlite:///<runs-dir>/<recipe name>/study.db)",
    )
    tune.add_argument("--study", help="study name (default: tune.study or the recipe name)")
    tune.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override recipe values, as for run",
    )
    tune.add_argument("--quick", action="store_true", help="apply the recipe's [quick] settings")
    tune.add_argument("--data-dir", type=Path, help=data_dir_help)
    tune.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default: ./runs")
    tune.add_argument("--no-cache", action="store_true", help="recompute features")

    ev = sub.add_parser("evaluate", help="score a checkpoint on labelled data, print JSON")
    ev.add_argument("checkpoint", type=Path, help="models/<name>/best.ckpt of a run")
    ev.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="a folder or zip in the dataset's layout (e.g. CinC's training2017.zip)",
    )
    ev.add_argument("--out", type=Path, help="also write the JSON to this file")

    pr = sub.add_parser(
        "predict",
        help="label new recordings of any length (heart-rate models: an HR trace per window)",
    )
    pr.add_argument("checkpoint", type=Path)
    pr.add_argument(
        "files",
        type=Path,
        nargs="+",
        help="WFDB .hea, .mat (CinC 'val' or IEEE SPC 2015 'sig'), .csv (a header row of "
        "channel names, e.g. PPG1,PPG2,ACCx,ACCy,ACCz) or .npy files",
    )
    pr.add_argument("--fs", type=float, help="sampling rate in Hz (required for .csv/.npy)")
    pr.add_argument("--channels", help="comma-separated channel names to use, in order")
    pr.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output: an aligned table, JSON or CSV (one row per recording, or per window)",
    )

    data = sub.add_parser("data", help="list, inspect and fetch datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    data_list = data_sub.add_parser("list", help="datasets and what is present locally")
    data_list.add_argument("--data-dir", type=Path, help=data_dir_help)
    info = data_sub.add_parser("info", help="one dataset: source, layout, local files")
    info.add_argument("name")
    info.add_argument("--data-dir", type=Path, help=data_dir_help)
    fetch = data_sub.add_parser("fetch", help="download (resumable, checksummed) a dataset")
    fetch.add_argument("name")
    fetch.add_argument("--dest", type=Path, help="target folder (default: the data directory)")
    synth = data_sub.add_parser(
        "synth",
        help="generate a seeded synthetic dataset into files",
        description="Generate synthetic events and save them as .npz files in the seed's form "
        "(X (events, 4, 4000), y (events, 4000)), plus a JSON file with the settings and the "
        "statistics measured on them. Read them with the peaks-npz dataset.",
    )
    synth.add_argument("kind", choices=("peaks",), help="what to generate: PV-finder-like events")
    synth.add_argument("--events", type=int, required=True, help="number of events")
    synth.add_argument("--seed", type=int, required=True, help="generator seed")
    synth.add_argument("--out", type=Path, required=True, help="folder for the files")
    synth.add_argument(
        "--first", type=int, default=0, help="index of the first event in the seed's stream"
    )
    synth.add_argument("--per-file", type=int, default=5000, help="events per file")
    synth.add_argument(
        "--set",
        dest="settings",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="difficulty settings (default: PV-finder-like), e.g. noise=0.1 z_spread=300; "
        "see docs/peaks.md",
    )

    report = sub.add_parser("report", help="(re)write report.html of a run directory")
    report.add_argument("run_dir", type=Path, help="runs/<recipe>/<run id>")

    models = sub.add_parser("models", help="list registered model architectures")
    models.add_argument("pattern", nargs="?", default="*", help="glob, e.g. '*lstm*'")

    demo = sub.add_parser("demo", help="a minutes-long AF study (synthetic data if none found)")
    demo.add_argument("--recipe", type=Path, default=Path("recipes/af2017.toml"))
    demo.add_argument("--data-dir", type=Path, help=data_dir_help)
    demo.add_argument("--runs-dir", type=Path, default=Path("runs"))
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting slow torch down up to 10x on a shared or small
    # CPU (measured in bench/bench_recurrent.py); set before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, training=args.command in ("run", "tune", "demo"))
    from physiodl import commands

    handlers = {
        "run": commands.run,
        "tune": commands.tune,
        "evaluate": commands.evaluate,
        "predict": commands.predict,
        "data": commands.data,
        "models": commands.models,
        "report": commands.report,
        "demo": commands.demo,
    }
    try:
        return handlers[args.command](args)
    except PhysioDLError as err:
        print(f"physiodl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("physiodl: interrupted", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool, *, training: bool) -> None:
    """Our messages on stderr; Lightning's start-up chatter only with ``--verbose``."""
    for old in [h for h in log.handlers if getattr(h, "physiodl_cli", False)]:
        log.removeHandler(old)  # main() may run several times in one process (tests)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.physiodl_cli = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    if not verbose:
        if training:
            import lightning.pytorch  # noqa: F401  (it sets its loggers' levels on import)
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")


if __name__ == "__main__":
    sys.exit(main())
