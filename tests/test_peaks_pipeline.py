"""Peak finding end to end: run, evaluate, predict, sweep and tune on small generated events."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from physiodl.checkpoint import load_checkpoint
from physiodl.cli import main
from physiodl.datasets import load_dataset
from physiodl.datasets.peaks_npz import save_events

SETTINGS = "length = 512, z_centre = 256.0, z_spread = 100.0"
RECIPE = f"""
task = "detection"
task_options = {{ tolerance = 5.0, fp_budget = 0.5 }}

[data]
dataset = "synthetic-peaks"
options = {{ events = 80, seed = 1, {SETTINGS} }}

[split]
kind = "random"
validation = 0.25

[features]
chunks = {{ length = false }}
balance = "none"

[train]
batch_size = 16
max_epochs = 2
optimizer = {{ lr = 0.005 }}

[[models]]
name = "unet"
arch = "UNet1d"
hparams = {{ widths = [8, 16], patch = 2 }}
"""
SEED_CNN = """
[[models]]
name = "cnn-mse"
arch = "PeakCNN"
hparams = { widths = [8, 8], strides = [2, 2] }
task_options = { criterion = "mse" }
"""


def write_recipe(folder: Path, name: str, extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nseed = 7\n{RECIPE}{extra}')
    return path


def only_run(runs: Path, name: str) -> Path:
    (run,) = [p for p in (runs / name).iterdir() if not p.name.startswith(".")]
    return run


@pytest.fixture(scope="module")
def peaks_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("peaks")
    recipe = write_recipe(folder, "peaks", SEED_CNN)
    assert main(["run", str(recipe), "--runs-dir", str(folder / "runs"), "--no-cache"]) == 0
    return only_run(folder / "runs", "peaks")


def test_run_scores_detection_and_reports_curves(peaks_run: Path) -> None:
    metrics = json.loads((peaks_run / "metrics.json").read_text())
    assert metrics["task"] == "detection"
    for name, loss in (("unet", "bce"), ("cnn-mse", "mse")):
        result = metrics["models"][name]
        record = result["record"]
        assert result["task"]["criterion"] == loss
        assert record["n_events"] == 20 and record["n_true"] > 60
        assert record["fp_per_event"] <= 0.5  # the operating point respects the budget
        assert 0 <= record["efficiency"] <= 1
        assert len(record["curve"]["threshold"]) > 20
        assert 0 <= result["chunk"]["bin_accuracy"] <= 1
        checkpoint = load_checkpoint(peaks_run / "models" / name / "best.ckpt")
        assert checkpoint.task.threshold == record["threshold"]
        with (peaks_run / "models" / name / "predictions.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 20
        assert sum(int(r["found"]) for r in rows) == record["found"]
        assert sum(int(r["false_positives"]) for r in rows) == record["false_positives"]
    history = (peaks_run / "models" / "unet" / "history.csv").read_text()
    assert "val_efficiency" in history.splitlines()[0]
    report = (peaks_run / "report.html").read_text()
    assert "Efficiency vs false positives" in report and "Example events" in report
    assert (peaks_run / "figures" / "efficiency_fp.png").is_file()
    comparison = (peaks_run / "comparison.csv").read_text().splitlines()[0]
    assert "record_efficiency" in comparison and "record_fp_per_event" in comparison


def test_evaluate_on_npz_files_reproduces_the_validation_scores(
    peaks_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (peaks_run / "models" / "unet" / "predictions.csv").open() as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    events = load_dataset(
        "synthetic-peaks", events=80, seed=1, length=512, z_centre=256.0, z_spread=100.0
    )
    chosen = [events.ids.index(i) for i in ids]
    X = np.stack([events.signals[i] for i in chosen])
    y = np.stack([events.targets[i] for i in chosen])
    save_events(tmp_path / "validation" / "part1.npz", X[:8], y[:8])
    save_events(tmp_path / "validation" / "part2.npz", X[8:], y[8:])
    checkpoint = peaks_run / "models" / "unet" / "best.ckpt"
    out = tmp_path / "scores.json"
    capsys.readouterr()
    args = ["evaluate", str(checkpoint), "--data-dir", str(tmp_path / "validation")]
    assert main([*args, "--out", str(out)]) == 0
    scores = json.loads(out.read_text())
    expected = json.loads((peaks_run / "metrics.json").read_text())["models"]["unet"]["record"]
    for key in ("n_true", "found", "false_positives", "threshold", "efficiency"):
        assert scores["record"][key] == pytest.approx(expected[key]), key

    capsys.readouterr()
    args = ["predict", str(checkpoint), str(tmp_path / "validation" / "part1.npz")]
    assert main([*args, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["event"] for r in rows] == list(range(8))
    with (peaks_run / "models" / "unet" / "predictions.csv").open() as f:
        first = next(csv.DictReader(f))
    assert rows[0]["peaks"] == pytest.approx([float(p) for p in first["peaks"].split()], abs=0.05)
    assert all(0 <= p < 512 for r in rows for p in r["peaks"])


def test_bad_task_option_and_missing_x_are_clear_errors(
    peaks_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write_recipe(tmp_path, "typo")
    recipe.write_text(recipe.read_text().replace("fp_budget", "fp_budgte"))
    assert main(["run", str(recipe), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "no option 'fp_budgte'" in capsys.readouterr().err
    np.savez(tmp_path / "no_x.npz", y=np.zeros((2, 512)))
    checkpoint = peaks_run / "models" / "unet" / "best.ckpt"
    assert main(["predict", str(checkpoint), str(tmp_path / "no_x.npz")]) == 2
    assert "no array 'X'" in capsys.readouterr().err


def test_sweep_over_training_sizes(tmp_path: Path) -> None:
    sweep = '\n[sweep]\nkey = "split.train_size"\nvalues = [20, 60]\n'
    recipe = write_recipe(tmp_path, "sizes", sweep)
    overrides = ["--set", "max_epochs=1"]
    assert main(["run", str(recipe), "--runs-dir", str(tmp_path / "runs"), *overrides]) == 0
    run = only_run(tmp_path / "runs", "sizes")
    with (run / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["split.train_size"], r["model"]) for r in rows] == [("20", "unet"), ("60", "unet")]
    for size in (20, 60):
        point = only_run(run / "points", f"split.train_size={size}")
        assert json.loads((point / "metadata.json").read_text())["split"]["train"] == size
    assert (run / "figures" / "sweep.png").is_file()
    assert "Metrics against split.train_size" in (run / "report.html").read_text()


TUNE = """
[tune]
trials = 2
startup_trials = 1
storage = "{storage}"
study = "shared"

[tune.space]
"models.unet.train.optimizer.lr" = {{ low = 1e-3, high = 1e-2, log = true }}
"models.unet.hparams.widths" = {{ choices = [[8, 16], [8, 8]] }}
"""


def test_two_tune_workers_share_one_study(tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    recipe = write_recipe(tmp_path, "tune", TUNE.format(storage=storage))
    recipe.write_text(recipe.read_text().replace("max_epochs = 2", "max_epochs = 1"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "physiodl.cli",
                "tune",
                str(recipe),
                "--no-cache",
                "--runs-dir",
                str(tmp_path / f"worker{k}"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 4
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    summary = json.loads((tmp_path / "worker1" / "tune" / "study.json").read_text())
    assert summary["metric"] == "record.efficiency" and summary["direction"] == "maximize"
    assert len(summary["trials"]) >= 3  # the later worker sees the other's trials too
    assert "Parameter importances" in (tmp_path / "worker1" / "tune" / "report.html").read_text()


def test_tune_rejects_unknown_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = '\n[tune]\n[tune.space]\n"models.unet.hparams.widht" = { low = 1, high = 4 }\n'
    recipe = write_recipe(tmp_path, "bad", space)
    assert main(["tune", str(recipe), "--runs-dir", str(tmp_path)]) == 2
    assert "UNet1d has no hyperparameter 'widht'" in capsys.readouterr().err
    recipe.write_text(recipe.read_text().replace("hparams.widht", "train.optimiser"))
    assert main(["tune", str(recipe), "--runs-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert (
        "tune.space 'models.unet.train.optimiser'" in error and "unknown key 'optimiser'" in error
    )
    recipe.write_text(recipe.read_text().replace("{ low = 1, high = 4 }", "{ low = 4, high = 1 }"))
    assert main(["tune", str(recipe), "--runs-dir", str(tmp_path)]) == 2
    assert "low < high" in capsys.readouterr().err
