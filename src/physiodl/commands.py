"""What each ``physiodl`` sub-command does; `physiodl.cli` only parses arguments."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from physiodl.errors import DataError, PhysioDLError
from physiodl.io.paths import data_dir
from physiodl.signalset import SignalSet

if TYPE_CHECKING:
    from physiodl.checkpoint import TrainedModel

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
    if config.sweep is not None:
        from physiodl.sweeps import run_sweep

        sweep_dir = run_sweep(config, options)
        print(f"sweep directory: {sweep_dir}")
        print(f"report:          {sweep_dir / 'report.html'}")
        return 0
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


def tune(args: argparse.Namespace) -> int:
    from physiodl.recipes import load_recipe
    from physiodl.tuning import TuneOptions, run_study

    config = load_recipe(args.recipe, args.overrides, quick=args.quick)
    if args.trials is not None and args.trials < 0:
        raise PhysioDLError(f"--trials must be >= 0, got {args.trials}")
    options = TuneOptions(
        data_dir=data_dir(args.data_dir),
        runs_dir=args.runs_dir,
        trials=args.trials,
        storage=args.storage,
        study_name=args.study,
        use_cache=not args.no_cache,
    )
    report = run_study(config, options)
    summary = json.loads((report.parent / "study.json").read_text())
    best = summary.get("best")
    print(f"report:     {report}")
    if best is not None:
        print(f"best trial: #{best['number']} {summary['metric']} = {best['value']:.4f}")
        for key, value in best["params"].items():
            print(f"  {key} = {value!r}")
    return 0


def _print_next_steps(run_dir: Path, data_root: Path, data_path: str | None) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    best = _best_model(metrics)
    print(f"run directory: {run_dir}")
    print(f"report:        {run_dir / 'report.html'}")
    if best is not None and metrics.get("task") == "detection":
        ckpt = run_dir / "models" / best / "best.ckpt"
        print(f"best model:    {best}")
        print("next (score on events of a generator seed the model never saw):")
        print("  physiodl data synth peaks --events 1000 --seed 999 --out heldout-events")
        print(f"  physiodl evaluate {ckpt} --data-dir heldout-events")
        print(f"  physiodl predict {ckpt} heldout-events/peaks-seed999-000.npz")
    elif best is not None:
        ckpt = run_dir / "models" / best / "best.ckpt"
        target = data_root / data_path if data_path else "DIR_OR_ZIP"
        print(f"best model:    {best}")
        print("next:")
        print(f"  physiodl evaluate {ckpt} --data-dir {target}")
        traces = "offline" in metrics["models"][best]
        print(f"  physiodl predict {ckpt} {'RECORDING.mat' if traces else 'RECORDING.hea'}")


def _best_model(metrics: dict[str, Any]) -> str | None:
    def key(item: tuple[str, dict[str, Any]]) -> float:
        record = item[1].get("record", {})
        for name in ("cinc_score", "af_f1", "macro_f1", "efficiency"):
            if record.get(name) is not None:
                return float(record[name])
        errors = item[1].get("offline") or record  # per-window traces: the offline MAE
        return -float(errors.get("mae", float("inf")))

    models = metrics.get("models", {})
    return max(models.items(), key=key)[0] if models else None


def evaluate(args: argparse.Namespace) -> int:
    from physiodl.checkpoint import TrainedModel, load_checkpoint
    from physiodl.datasets import load_dataset
    from physiodl.evaluation import evaluate as evaluate_model
    from physiodl.evaluation import score
    from physiodl.trace_evaluation import evaluate_traces

    trained = load_checkpoint(args.checkpoint)
    name, options = _files_dataset(trained.dataset["name"], trained.recipe)
    if trained.classes is not None:
        options["classes"] = tuple(trained.classes)
    raw = load_dataset(name, path=args.data_dir.resolve(), **options)
    if not isinstance(trained, TrainedModel):  # an ensemble is scored on whole records only
        levels = {"record": score(trained.task, np.asarray(raw.targets), trained.predict(raw))}
    elif trained.dataset.get("target_windows") and trained.features.config.chunks.length:
        data, length = trained.features(raw), trained.features.config.chunks.length
        levels = evaluate_traces(trained.model, trained.task, data, length=length).levels()
    else:
        chunks = trained.features.config.chunks
        levels = evaluate_model(
            trained.model, trained.task, trained.features(raw), **chunks.evaluation()
        ).levels()
    report = {
        "checkpoint": str(args.checkpoint),
        "data": str(args.data_dir),
        "n_records": len(raw),
        "excluded": raw.meta.get("excluded", {}),
        "skipped": raw.meta.get("skipped", {}),
        **({"empty_events": len(raw.meta["empty_events"])} if "empty_events" in raw.meta else {}),
        **levels,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def _files_dataset(name: str, recipe: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The dataset that reads files like a checkpoint's training data, and its options: the
    training loader's own, or for generated data the loader of its saved files (none)."""
    from physiodl.datasets import dataset_info

    info = dataset_info(name)
    if info.files_dataset is not None:
        return info.files_dataset, {}
    options = dict(recipe.get("data", {}).get("options", {}))
    options.pop("max_records", None)  # a quick run's subset size is no property of the model
    options.pop("max_events", None)
    return name, options


def predict(args: argparse.Namespace) -> int:
    from physiodl.checkpoint import TrainedModel, load_checkpoint
    from physiodl.io.recordings import read_recording

    trained = load_checkpoint(args.checkpoint)
    if isinstance(trained, TrainedModel) and trained.task.per_bin:
        return _predict_events(trained, args)
    reference = trained if isinstance(trained, TrainedModel) else trained.members[0]
    wanted = tuple(args.channels.split(",")) if args.channels else None
    traces = bool(trained.dataset.get("target_windows"))
    rows = []
    for path in args.files:
        signal, fs, names = read_recording(path, fs=args.fs, channels=wanted)
        ss = _model_input(reference, path, signal, fs, names, by_name=traces)
        if traces:
            rows += _trace_rows(reference, path, ss)
            continue
        proba = trained.predict(ss)[0]
        rows.append(_prediction_row(path, signal.shape[1] / fs, trained.classes, proba))
    _print_rows(rows, args.format)
    return 0


def _model_input(
    trained: TrainedModel,
    path: Path,
    signal: np.ndarray,
    fs: float,
    names: tuple[str, ...],
    *,
    by_name: bool,
) -> SignalSet:
    """One recording as the model's input channels: by name where ``by_name`` and the file
    names them all (e.g. PPG1, ACCx columns), else by position."""
    expected = tuple(trained.dataset["channels"])
    needed = tuple(trained.features.config.channels or expected)
    if by_name and all(n in names for n in needed):
        signal = signal[[names.index(n) for n in needed]]
        return SignalSet([signal], fs=fs, channels=needed, ids=(path.stem,))
    if signal.shape[0] != len(expected):
        raise DataError(
            f"{path}: has {signal.shape[0]} channels ({', '.join(names)}), the model expects "
            f"{len(expected)} ({', '.join(expected)}); name them so (e.g. CSV column headers) "
            "or choose with --channels"
        )
    return SignalSet([signal], fs=fs, channels=expected, ids=(path.stem,))


def _trace_rows(trained: TrainedModel, path: Path, ss: SignalSet) -> list[dict[str, Any]]:
    """One row per window: its start and end (s) and the value decoded offline and causally."""
    from physiodl.trace_evaluation import predict_traces
    from physiodl.window_targets import TargetWindows

    data = trained.features(ss)
    windows = TargetWindows.from_dict(trained.dataset["target_windows"])
    length, stride = windows.in_samples(data.fs)
    trace = predict_traces(trained.model, trained.task, data, length=length, stride=stride)[0]
    return [
        {
            "file": str(path),
            "window": k,
            "start_s": round(float(start), 3),
            "end_s": round(float(start) + windows.length_s, 3),
            "offline": round(float(offline), 2),
            "causal": round(float(causal), 2),
        }
        for k, (start, offline, causal) in enumerate(
            zip(trace["start_s"], trace["offline"], trace["causal"], strict=True)
        )
    ]


def _print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_table(rows)


def _predict_events(trained: Any, args: argparse.Namespace) -> int:
    """Peak positions in every event of ``.npz`` files (``X``; ``y`` is not needed)."""
    from physiodl.datasets.peaks_npz import events_signalset, read_event_inputs
    from physiodl.evaluation import predict_records
    from physiodl.outputs import event_peak_rows

    rows: list[dict[str, Any]] = []
    chunks = trained.features.config.chunks
    for path in args.files:
        X = read_event_inputs(path, n_channels=len(trained.dataset["channels"]))
        ids = [f"{path.stem}:{i}" for i in range(len(X))]
        events = events_signalset(X, None, ids, meta={"source": str(path)})
        scores = predict_records(
            trained.model, trained.task, trained.features(events), **chunks.evaluation()
        )
        for event, row in enumerate(event_peak_rows(trained.task, ids, None, list(scores))):
            n_peaks = len(row["peaks"].split())
            rows.append({"file": str(path), "event": event, "n_peaks": n_peaks, **row})
            del rows[-1]["id"]
    if args.format == "json":
        for row in rows:
            row["peaks"] = [float(p) for p in row["peaks"].split()]
            row["scores"] = [float(p) for p in row["scores"].split()]
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
    elif args.data_command == "synth":
        _synth_peaks(args)
    else:
        dest = args.dest or data_dir(None)
        path = fetch_dataset(args.name, dest)
        print(f"{args.name} is ready at {path}")
    return 0


def _synth_peaks(args: argparse.Namespace) -> None:
    from physiodl.datasets.peaks_npz import save_events
    from physiodl.datasets.synthetic_peaks import (
        PeakEventConfig,
        event_statistics,
        peaks_simulate,
        without_inputs,
    )
    from physiodl.recipes import parse_value

    settings = {}
    for item in args.settings:
        key, sep, text = item.partition("=")
        if not sep:
            raise PhysioDLError(f"--set {item!r} is not of the form name=value")
        settings[key.strip()] = parse_value(text.strip())
    config = PeakEventConfig.of(**settings)
    if args.events < 1 or args.per_file < 1 or args.first < 0:
        raise PhysioDLError("--events and --per-file must be >= 1 and --first >= 0")
    stem = f"peaks-seed{args.seed}"
    parts = []
    files = []
    for number, lo in enumerate(range(args.first, args.first + args.events, args.per_file)):
        n = min(args.per_file, args.first + args.events - lo)
        events = peaks_simulate(n, args.seed, config, first=lo)
        files.append(save_events(args.out / f"{stem}-{number:03d}.npz", events.X, events.y))
        parts.append(without_inputs(events))
        print(f"wrote {files[-1]} ({n} events)")
    summary = event_statistics(parts, weak_tracks=2 * config.visible_tracks)
    info = {
        "seed": args.seed,
        "first": args.first,
        "files": [f.name for f in files],
        "settings": config.to_dict(),
        "statistics": summary,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


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
