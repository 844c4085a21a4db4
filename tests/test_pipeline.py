"""End to end through the command line: run, evaluate, predict, resume, failures, DDP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from physiodl.checkpoint import TrainedEnsemble, load_checkpoint
from physiodl.cli import main

SPECTROGRAM_MODELS = """
[features]
spectrogram = { nperseg = 32, noverlap = 4 }
normalise = "per_frequency"
chunks = { length = 40 }
balance = "oversample"

[train]
max_epochs = 2
batch_size = 64
optimizer = { lr = 0.01 }

[[models]]
name = "torch-lstm"
arch = "TorchLSTMNet"
hparams = { hidden = 16, head = 16 }

[[models]]
name = "conv-rc"
arch = "ConvNet"
features = { chunks = { random = true } }

[[ensembles]]
name = "both"
members = ["torch-lstm", "conv-rc"]
"""


def write_recipe(
    folder: Path, data: str, body: str = SPECTROGRAM_MODELS, name: str = "e2e"
) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nseed = 7\n\n[data]\n{data}\n{body}')
    return path


SYNTHETIC = 'dataset = "synthetic-ecg"\nclasses = ["N", "A"]\n' + (
    "options = { n_records = 48, max_duration_s = 12.0, seed = 3 }"
)


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def only_run(runs: Path, name: str) -> Path:
    finished = [p for p in (runs / name).iterdir() if not p.name.startswith(".")]
    assert len(finished) == 1, finished
    return finished[0]


@pytest.fixture()
def cinc_run(tmp_path: Path, cinc_small_zip: Path) -> Path:
    """A finished two-model run on 60 real CinC records (N and A)."""
    data = f'dataset = "cinc2017"\npath = "{cinc_small_zip}"\nclasses = ["N", "A"]'
    recipe = write_recipe(tmp_path, data, name="cinc")
    assert run_cli("run", recipe, "--runs-dir", tmp_path / "runs") == 0
    return only_run(tmp_path / "runs", "cinc")


def test_run_writes_a_complete_run_directory(cinc_run: Path) -> None:
    for name in ("config.toml", "metrics.json", "comparison.csv", "metadata.json", "report.html"):
        assert (cinc_run / name).is_file(), name
    metrics = json.loads((cinc_run / "metrics.json").read_text())
    assert set(metrics["models"]) == {"torch-lstm", "conv-rc", "both"}
    meta = json.loads((cinc_run / "metadata.json").read_text())
    assert meta["data"]["n_records"] == 60  # 40 N + 20 A of the fixture's 80
    assert meta["data"]["excluded"]  # the O and ~ records are counted, not silently dropped
    n_val = meta["split"]["validation"]
    assert meta["split"]["train"] + n_val == 60
    for name in ("torch-lstm", "conv-rc"):
        result = metrics["models"][name]
        record = result["record"]
        assert record["n"] == n_val
        assert sum(map(sum, record["confusion"])) == n_val
        assert 0.0 <= record["balanced_accuracy"] <= 1.0
        assert result["chunk"]["n"] > n_val  # several 40-frame chunks per record
        assert 1 <= result["best_epoch"] <= 2
        with (cinc_run / "models" / name / "predictions.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == n_val
        assert all(abs(float(r["p_N"]) + float(r["p_A"]) - 1) < 1e-4 for r in rows)
        assert (cinc_run / "models" / name / "history.csv").is_file()
    with (cinc_run / "comparison.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [row["model"] for row in table] == ["torch-lstm", "conv-rc", "both"]
    assert any((cinc_run / "tensorboard").rglob("events.out.tfevents.*"))


def test_checkpoint_is_self_contained(cinc_run: Path) -> None:
    path = cinc_run / "models" / "torch-lstm" / "best.ckpt"
    payload = torch.load(path, weights_only=True)  # no pickled objects
    assert payload["arch"] == "TorchLSTMNet"
    assert payload["features"]["normaliser"] is not None
    trained = load_checkpoint(path)
    assert trained.classes == ("N", "A")
    assert trained.features.input_fs == 300.0


def test_ensemble_averages_its_members(
    cinc_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def probabilities(name: str) -> np.ndarray:
        with (cinc_run / "models" / name / "predictions.csv").open() as f:
            return np.array([[float(r["p_N"]), float(r["p_A"])] for r in csv.DictReader(f)])

    mean = (probabilities("torch-lstm") + probabilities("conv-rc")) / 2
    np.testing.assert_allclose(probabilities("both"), mean, atol=2e-6)
    metrics = json.loads((cinc_run / "metrics.json").read_text())["models"]["both"]
    assert metrics["members"] == ["torch-lstm", "conv-rc"] and metrics["chunk"] == {}
    ensemble = load_checkpoint(cinc_run / "models" / "both" / "best.ckpt")
    assert isinstance(ensemble, TrainedEnsemble) and len(ensemble.members) == 2
    members = [
        load_checkpoint(cinc_run / "models" / n / "best.ckpt") for n in ("torch-lstm", "conv-rc")
    ]
    from physiodl.datasets.synthetic import load as synthetic

    recordings = synthetic(n_records=3, seed=11)
    expected = np.mean([m.predict(recordings) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(recordings), expected, atol=1e-6)


def test_evaluate_reproduces_the_run_on_its_validation_records(
    cinc_run: Path, cinc_small_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zip holding exactly the validation records scores as the run did."""
    model_dir = cinc_run / "models" / "torch-lstm"
    with (model_dir / "predictions.csv").open() as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    subset = tmp_path / "validation.zip"
    with zipfile.ZipFile(cinc_small_zip) as src, zipfile.ZipFile(subset, "w") as dst:
        labels = dict(
            line.split(",") for line in src.read("training2017/REFERENCE.csv").decode().split()
        )
        for rid in ids:
            for ext in (".hea", ".mat"):
                dst.writestr(f"training2017/{rid}{ext}", src.read(f"training2017/{rid}{ext}"))
        dst.writestr("training2017/RECORDS", "".join(f"{r}\n" for r in ids))
        dst.writestr("training2017/REFERENCE.csv", "".join(f"{r},{labels[r]}\r\n" for r in ids))
    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert run_cli("evaluate", model_dir / "best.ckpt", "--data-dir", subset, "--out", out) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    expected = json.loads((cinc_run / "metrics.json").read_text())["models"]["torch-lstm"]
    assert printed["record"]["confusion"] == expected["record"]["confusion"]
    assert printed["record"]["balanced_accuracy"] == pytest.approx(
        expected["record"]["balanced_accuracy"]
    )
    assert printed["chunk"]["accuracy"] == pytest.approx(expected["chunk"]["accuracy"])


def test_predict_any_format_and_sampling_rate(
    cinc_run: Path, cinc_small_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = cinc_run / "models" / "torch-lstm" / "best.ckpt"
    with zipfile.ZipFile(cinc_small_zip) as z:
        for ext in (".hea", ".mat"):
            (tmp_path / f"A00001{ext}").write_bytes(z.read(f"training2017/A00001{ext}"))
    from physiodl.io.recordings import read_recording
    from physiodl.transforms.filters import resample_array

    signal_mv, fs, _ = read_recording(tmp_path / "A00001.hea")
    np.save(tmp_path / "a.npy", signal_mv)
    at_500 = resample_array(signal_mv, fs, 500.0)
    np.savetxt(tmp_path / "b.csv", at_500.T, delimiter=",", header="ECG", comments="")
    capsys.readouterr()
    files = [tmp_path / "A00001.hea", tmp_path / "a.npy", tmp_path / "b.csv"]
    assert run_cli("predict", ckpt, *files[:1], "--format", "json") == 0
    from_header = json.loads(capsys.readouterr().out)[0]
    assert run_cli("predict", ckpt, files[1], "--fs", "300", "--format", "json") == 0
    from_npy = json.loads(capsys.readouterr().out)[0]
    assert run_cli("predict", ckpt, files[2], "--fs", "500", "--format", "json") == 0
    from_csv = json.loads(capsys.readouterr().out)[0]
    assert from_header["p_A"] == pytest.approx(from_npy["p_A"], abs=1e-6)
    assert from_csv["p_A"] == pytest.approx(from_header["p_A"], abs=0.1)  # resampled twice
    assert from_header["duration_s"] == pytest.approx(30.0, abs=0.01)
    assert from_header["label"] in ("N", "A")
    assert run_cli("predict", ckpt, *files[:2], "--fs", "300") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["file", "duration_s", "label"] and len(table) == 3


def test_user_errors_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = write_recipe(tmp_path, SYNTHETIC.replace("classes", "clases"))
    assert run_cli("run", typo, "--runs-dir", tmp_path / "runs") == 2
    err = capsys.readouterr().err
    assert "unknown key 'data.clases'" in err and "Traceback" not in err
    missing = write_recipe(tmp_path, 'dataset = "cinc2017"\npath = "nowhere/x.zip"', name="m")
    assert run_cli("run", missing, "--runs-dir", tmp_path / "runs") == 2
    assert "nowhere/x.zip" in capsys.readouterr().err
    assert run_cli("evaluate", tmp_path / "none.ckpt", "--data-dir", tmp_path) == 2
    assert "does not exist" in capsys.readouterr().err


def test_failed_run_leaves_earlier_runs_untouched(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    recipe = write_recipe(tmp_path, SYNTHETIC)
    assert run_cli("run", recipe, "--runs-dir", runs, "--set", "models.*.train.max_epochs=1") == 0
    first = only_run(runs, "e2e")
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    # a ConvNet cannot take 8-frame chunks: the second model fails after the first trained
    bad = ["models.*.train.max_epochs=1", "models.conv-rc.features.chunks.length=8"]
    assert run_cli("run", recipe, "--runs-dir", runs, "--set", *bad) == 2
    assert only_run(runs, "e2e") == first
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == before
    partial = [p for p in (runs / "e2e").iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1 and (partial[0] / "models" / "torch-lstm" / "result.json").is_file()


SEEDED_MODELS = """
[features]
spectrogram = { nperseg = 32, noverlap = 4 }
chunks = { length = 40 }

[train]
max_epochs = 1

[[models]]
name = "recipe-seed"
arch = "ConvNet"

[[models]]
name = "own-seed"
arch = "ConvNet"
seed = 99

[[models]]
name = "same-seed"
arch = "ConvNet"
seed = 7
"""


def test_a_model_seed_replaces_the_recipe_seed(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, SYNTHETIC, SEEDED_MODELS)  # the recipe's seed is 7
    assert run_cli("run", recipe, "--runs-dir", tmp_path / "runs") == 0
    models = only_run(tmp_path / "runs", "e2e") / "models"

    def weights(name: str) -> torch.Tensor:
        trained = load_checkpoint(models / name / "best.ckpt")
        return torch.cat([p.flatten() for p in trained.model.parameters()])

    assert torch.equal(weights("recipe-seed"), weights("same-seed"))
    assert not torch.allclose(weights("recipe-seed"), weights("own-seed"))


def _cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "physiodl.cli", *args]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a shell's Ctrl-C handling, whatever the test process does with SIGINT (pytest-xdist
        # workers may ignore it, and an ignored signal stays ignored in children)
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SLOW_BODY = SPECTROGRAM_MODELS.replace("max_epochs = 2", "max_epochs = 5")


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    data = SYNTHETIC.replace("n_records = 48", "n_records = 160")
    recipe = write_recipe(tmp_path, data, SLOW_BODY)
    straight = _cli(["run", str(recipe), "--runs-dir", "straight"], tmp_path)
    assert straight.wait(timeout=600) == 0, straight.stdout.read()
    interrupted = _cli(["run", str(recipe), "--runs-dir", "resumed"], tmp_path)
    last = list(
        (tmp_path / "resumed" / "e2e").glob(".*.partial/models/conv-rc/lightning/last.ckpt")
    )
    deadline = time.time() + 300
    while not last and time.time() < deadline and interrupted.poll() is None:
        time.sleep(0.05)
        last = list(
            (tmp_path / "resumed" / "e2e").glob(".*.partial/models/conv-rc/lightning/last.ckpt")
        )
    interrupted.send_signal(signal.SIGINT)  # Ctrl-C during the second model's training
    output = interrupted.communicate(timeout=300)[0]
    assert interrupted.returncode == 130, (interrupted.returncode, output)
    assert "--resume" in output
    resumed = _cli(["run", str(recipe), "--runs-dir", "resumed", "--resume"], tmp_path)
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    a = json.loads((only_run(tmp_path / "straight", "e2e") / "metrics.json").read_text())
    b = json.loads((only_run(tmp_path / "resumed", "e2e") / "metrics.json").read_text())
    for name in a["models"]:
        for level in ("chunk", "record"):
            assert a["models"][name][level] == b["models"][name][level], (name, level)
        assert a["models"][name]["best_epoch"] == b["models"][name]["best_epoch"]


@pytest.mark.slow
def test_same_recipe_runs_under_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, SYNTHETIC)
    ddp = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
    proc = _cli(["run", str(recipe), "--runs-dir", "runs", "--set", *ddp], tmp_path)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output
    run = only_run(tmp_path / "runs", "e2e")
    assert not [p for p in (tmp_path / "runs" / "e2e").iterdir() if p.name.startswith(".")]
    metrics = json.loads((run / "metrics.json").read_text())
    history = (run / "models" / "torch-lstm" / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs, written once by rank 0
    assert set(metrics["models"]) == {"torch-lstm", "conv-rc", "both"}
    assert metrics["models"]["torch-lstm"]["record"]["n"] == 10
