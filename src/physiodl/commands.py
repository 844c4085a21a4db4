"""What each ``physiodl`` sub-command does; `physiodl.cli` only parses arguments."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.errors import DataError, PhysioDLError
from physiodl.io.paths import data_dir

log = logging.getLogger("physiodl")


def run(args: argparse.Namespace) -> int:
    from physiodl.pipeline import RunOptions, run_recipe
    from physiodl.recipes import load_recipe
    from physiodl.rundir import RunDirectory

    config = load_recipe(args.recipe, args.overrides, quick=args.quick)
    options = RunOptions(
        data_dir=data_dir(args.data_dir),
        runs_dir=args.runs_dir,
        resume=args.resume,
        only_models=tuple(args.models.split(",")) if args.models else (),
        use_cache=not args.no_cache,
    )
    try:
        run_dir = run_recipe(config, options)
    except KeyboardInterrupt:
        log.error(
            "interrupted; continue with: physiodl run %s --resume", shlex.quote(str(args.recipe))
        )
        raise
    if not RunDirectory(run_dir, run_dir).is_main_process:
        return 0
    _print_next_steps(run_dir, options.data_dir, config.data.path)
    return 0


def _print_next_steps(run_dir: Path, data_root: Path, data_path: str | None) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    best = _best_model(metrics)
    print(f"run directory: {run_dir}")
    print(f"report:        {run_dir / 'report.html'}")
    if best is not None:
        ckpt = run_dir / "models" / best / "best.ckpt"
        target = data_root / data_path if data_path else "DIR_OR_ZIP"
        print(f"best model:    {best}")
        print("next:")
        print(f"  physiodl evaluate {ckpt} --data-dir {target}")
        print(f"  physiodl predict {ckpt} RECORDING.hea")


def _best_model(metrics: dict[str, Any]) -> str | None:
    def key(item: tuple[str, dict[str, Any]]) -> float:
        record = item[1].get("record", {})
        for name in ("cinc_score", "af_f1", "macro_f1"):
            if record.get(name) is not None:
                return float(record[name])
        return -float(record.get("mae", float("inf")))

    models = metrics.get("models", {})
    return max(models.items(), key=key)[0] if models else None


def evaluate(args: argparse.Namespace) -> int:
    from physiodl.checkpoint import TrainedModel, load_checkpoint
    from physiodl.datasets import load_dataset
    from physiodl.evaluation import evaluate as evaluate_model
    from physiodl.evaluation import score

    trained = load_checkpoint(args.checkpoint)
    options = dict(trained.recipe.get("data", {}).get("options", {}))
    options.pop("max_records", None)  # a quick run's subset size is no property of the model
    if trained.classes is not None:
        options["classes"] = tuple(trained.classes)
    raw = load_dataset(trained.dataset["name"], path=args.data_dir.resolve(), **options)
    report = {
        "checkpoint": str(args.checkpoint),
        "data": str(args.data_dir),
        "n_records": len(raw),
        "excluded": raw.meta.get("excluded", {}),
        "skipped": raw.meta.get("skipped", {}),
    }
    if isinstance(trained, TrainedModel):
        chunks = trained.features.config.chunks
        result = evaluate_model(
            trained.model,
            trained.task,
            trained.features(raw),
            length=chunks.length,
            stride=chunks.eval_stride,
        )
        report |= {"record": result.record_metrics, "chunk": result.window_metrics}
    else:  # an ensemble is scored on whole records only
        report["record"] = score(trained.task, np.asarray(raw.targets), trained.predict(raw))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def predict(args: argparse.Namespace) -> int:
    from physiodl.checkpoint import load_checkpoint
    from physiodl.io.recordings import read_recording
    from physiodl.signalset import SignalSet

    trained = load_checkpoint(args.checkpoint)
    wanted = tuple(args.channels.split(",")) if args.channels else None
    expected = len(trained.dataset["channels"])
    rows = []
    for path in args.files:
        signal, fs, names = read_recording(path, fs=args.fs, channels=wanted)
        if signal.shape[0] != expected:
            raise DataError(
                f"{path}: has {signal.shape[0]} channels ({', '.join(names)}), the model expects "
                f"{expected} ({', '.join(trained.dataset['channels'])}); choose with --channels"
            )
        ss = SignalSet(
            [signal], fs=fs, channels=tuple(trained.dataset["channels"]), ids=(path.stem,)
        )
        proba = trained.predict(ss)[0]
        rows.append(_prediction_row(path, signal.shape[1] / fs, trained.classes, proba))
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


def _prediction_row(
    path: Path, duration: float, classes: tuple[str, ...] | None, output: np.ndarray
) -> dict[str, Any]:
    row: dict[str, Any] = {"file": str(path), "duration_s": round(duration, 2)}
    if classes is None:
        row["prediction"] = np.asarray(output).tolist()
        return row
    row["label"] = classes[int(np.argmax(output))]
    row |= {f"p_{c}": round(float(p), 4) for c, p in zip(classes, output, strict=True)}
    return row


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def data(args: argparse.Namespace) -> int:
    from physiodl.datasets import DATASETS, dataset_info, dataset_status, fetch_dataset

    if args.data_command == "list":
        root = data_dir(args.data_dir)
        print(f"data directory: {root}")
        for name, info in DATASETS.items():
            status = dataset_status(name, root)
            print(f"  {name:16s} {status['summary']:30s} {info.title}")
    elif args.data_command == "info":
        info = dataset_info(args.name)
        status = dataset_status(args.name, data_dir(args.data_dir))
        print(f"{info.name}: {info.title}\n")
        print(f"task:     {info.task}")
        print(f"license:  {info.license}")
        print(f"citation: {info.citation}\n")
        for remote in info.remote_files:
            print(f"source:   {remote.url}")
        print(f"\nexpected layout:\n{info.layout}\n")
        print("local:")
        print(json.dumps(status, indent=2))
    else:
        dest = args.dest or data_dir(None)
        path = fetch_dataset(args.name, dest)
        print(f"{args.name} is ready at {path}")
    return 0


def report(args: argparse.Namespace) -> int:
    from physiodl.report import write_report

    print(write_report(args.run_dir))
    return 0


def models(args: argparse.Namespace) -> int:
    from physiodl.models.registry import list_models, model_hparams

    names = list_models(args.pattern)
    if not names:
        raise PhysioDLError(f"no registered model matches {args.pattern!r}")
    for name in names:
        params = ", ".join(f"{k}={v!r}" for k, v in model_hparams(name).items())
        print(f"{name}({params})")
    return 0


def demo(args: argparse.Namespace) -> int:
    from physiodl.datasets import dataset_path
    from physiodl.pipeline import RunOptions, run_recipe
    from physiodl.recipes import load_recipe

    root = data_dir(args.data_dir)
    config = load_recipe(args.recipe, quick=True)
    try:
        dataset_path(config.data.dataset, config.data.path, root)
    except DataError:
        name = config.data.dataset
        print(
            f"No real {name} data in {root}: this demo runs on SYNTHETIC ECGs instead.\n"
            f"For the real study: physiodl data fetch {name}  (or set PHYSIODL_DATA)."
        )
        overrides = ["data.dataset=synthetic-ecg", "data.options={}", "data.path=''"]
        config = load_recipe(args.recipe, overrides, quick=True)
    run_dir = run_recipe(config, RunOptions(data_dir=root, runs_dir=args.runs_dir))
    _print_next_steps(run_dir, root, config.data.path or None)
    return 0
