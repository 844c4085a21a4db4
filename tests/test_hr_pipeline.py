"""Heart rate end to end on real IEEE SPC 2015 recordings: run (cross-validation, test
subjects, a baseline that learns nothing), report, evaluate, predict, bad inputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from physiodl.checkpoint import load_checkpoint
from physiodl.cli import main

TRAINING = ["DATA_01_TYPE01", "DATA_02_TYPE02", "DATA_03_TYPE02"]
TESTING = ["S02_T01", "S02_T02"]

RECIPE = """
name = "hr"
seed = 3
task = "regression"

[data]
dataset = "ieee_spc2015"
path = "{path}"

[split]
kind = "kfold"
k = 2
test_groups = ["03"]

[features]
resample = 25.0
bandpass = [0.4, 4.0]
chunks = {{ length = 200, stride = 50 }}
balance = "none"

[train]
batch_size = 64
max_epochs = 2
keep = "last"
optimizer = {{ name = "adamw", lr = 0.003 }}

[[models]]
name = "spectral-peak"
arch = "SpectralPeak"
hparams = {{ ppg_channels = [0, 1], acc_channels = [2, 3, 4], bin_low = 40.0, bin_high = 200.0 }}
task_options = {{ criterion = "bins", bin_low = 40.0, bin_high = 200.0, max_jump = 6.0 }}

[[models]]
name = "spectral-cnn"
arch = "SpectralConvNet"
hparams = {{ width = 4, dilations = [1, 4], ppg_channels = [0, 1], bin_low = 40.0, bin_high = 200 }}
task_options = {{ criterion = "bins", bin_low = 40.0, bin_high = 200.0, max_jump = 6.0 }}
train = {{ rate_scale = 0.1 }}

[[models]]
name = "seed-cnn-ppg"
arch = "ConvDenseNet"
hparams = {{ conv_layers = 2, dense_layers = 2, dense_units = 8 }}
features = {{ channels = ["PPG1", "PPG2"] }}
train = {{ max_epochs = 1 }}
"""


def _subset(ieee: Path, root: Path, training: list[str], testing: list[str]) -> Path:
    for name in training:
        (root / "Training_data").mkdir(parents=True, exist_ok=True)
        for suffix in (".mat", "_BPMtrace.mat"):
            shutil.copy(ieee / "Training_data" / f"{name}{suffix}", root / "Training_data")
    for name in testing:
        for folder, file in (("TestData", f"TEST_{name}.mat"), ("TrueBPM", f"True_{name}.mat")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(ieee / folder / file, root / folder)
    return root


@pytest.fixture(scope="module")
def hr_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hr")
    data = _subset(data_dir / "ieee-spc2015", folder / "ieee", TRAINING, TESTING)
    recipe = folder / "hr.toml"
    recipe.write_text(RECIPE.format(path=data))
    runs = folder / "runs"
    assert main(["run", str(recipe), "--runs-dir", str(runs)]) == 0
    [run] = [p for p in (runs / "hr").iterdir() if not p.name.startswith(".")]
    return run


def test_run_scores_every_model_on_validation_folds_and_test_subjects(hr_run: Path) -> None:
    metrics = json.loads((hr_run / "metrics.json").read_text())["models"]
    assert list(metrics) == ["spectral-peak", "spectral-cnn", "seed-cnn-ppg"]
    baseline = metrics["spectral-peak"]
    assert baseline["trainable"] is False and baseline["n_params"] == 0
    assert baseline["validation"] == "2-fold cross-validation"
    validation_ids = {"DATA_01_TYPE01", "DATA_02_TYPE02", "TEST_S02_T01", "TEST_S02_T02"}
    for name, result in metrics.items():
        assert set(result["per_record"]) == validation_ids, name
        assert set(result["per_group"]) == {"01", "02", "S02"}
        assert result["offline"]["n"] == 148 + 148 + 137 + 144
        assert set(result["test"]["per_record"]) == {"DATA_03_TYPE02"}
        assert result["test"]["offline"]["n"] == 140
        assert len(result["folds"]) == 2
        for level in ("offline", "causal"):
            assert 0 <= result[level]["within_5"] <= result[level]["within_10"] <= 1
    # the classical tracker finds the pulse; the seed CNN after one epoch does not
    assert baseline["offline"]["mae"] < 10 and metrics["seed-cnn-ppg"]["offline"]["mae"] > 20
    assert metrics["spectral-cnn"]["trainable"] and metrics["spectral-cnn"]["epochs_trained"] == 2
    meta = json.loads((hr_run / "metadata.json").read_text())
    assert meta["split"]["test_groups"] == ["03"] and meta["split"]["folds"] == 2
    with (hr_run / "comparison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["test_offline_mae"]) == pytest.approx(baseline["test"]["offline"]["mae"])
    with (hr_run / "models" / "spectral-cnn" / "test_predictions.csv").open() as f:
        test_rows = list(csv.DictReader(f))
    assert len(test_rows) == 140 and {r["group"] for r in test_rows} == {"03"}


def test_report_has_the_heart_rate_sections(hr_run: Path) -> None:
    page = (hr_run / "report.html").read_text()
    for title in ("Heart rate", "Per subject and recording", "Bland–Altman", "Over time"):
        assert f"<h2>{title}</h2>" in page
    assert "MAE (bpm) per subject" in page and "S02" in page
    figures = {p.stem for p in (hr_run / "figures").glob("*.png")}
    assert {"errors_validation", "errors_test", "bland_altman", "over_time"} <= figures


def test_evaluate_scores_a_folder_of_new_subjects_as_the_run_scored_its_test_part(
    hr_run: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held_out = _subset(data_dir / "ieee-spc2015", tmp_path / "new", ["DATA_03_TYPE02"], [])
    for name in ("spectral-cnn", "seed-cnn-ppg"):
        capsys.readouterr()
        ckpt = hr_run / "models" / name / "best.ckpt"
        assert main(["evaluate", str(ckpt), "--data-dir", str(held_out)]) == 0
        printed = json.loads(capsys.readouterr().out)
        expected = json.loads((hr_run / "metrics.json").read_text())["models"][name]["test"]
        assert printed["n_records"] == 1
        for level in ("offline", "causal"):
            assert printed[level]["mae"] == pytest.approx(expected[level]["mae"], rel=1e-5)
    assert load_checkpoint(hr_run / "models" / "spectral-cnn" / "best.ckpt").ensemble == 2


def test_predict_gives_an_hr_trace_from_mat_and_named_csv_columns(
    hr_run: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = hr_run / "models" / "spectral-cnn" / "best.ckpt"
    mat = data_dir / "ieee-spc2015" / "Training_data" / "DATA_03_TYPE02.mat"
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(mat), "--format", "csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 140 and rows[1]["start_s"] == "2.0" and rows[1]["end_s"] == "10.0"
    with (hr_run / "models" / "spectral-cnn" / "test_predictions.csv").open() as f:
        expected = [float(r["offline"]) for r in csv.DictReader(f)]
    np.testing.assert_allclose([float(r["offline"]) for r in rows], expected, atol=0.01)
    sig = loadmat(mat)["sig"]
    table = tmp_path / "wrist.csv"
    names = "ACCz,PPG2,PPG1,ACCx,ACCy"  # named columns in any order, the ECG left out
    order = [5, 2, 1, 3, 4]
    np.savetxt(table, sig[order].T, delimiter=",", header=names, comments="")
    assert main(["predict", str(ckpt), str(table), "--fs", "125", "--format", "json"]) == 0
    from_csv = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([r["offline"] for r in from_csv], expected, atol=0.05)
    assert main(["predict", str(hr_run / "models" / "seed-cnn-ppg" / "best.ckpt"), str(mat)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 141  # PPG-only model: header + windows


def test_predict_bad_inputs_are_clear_errors(
    hr_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = hr_run / "models" / "spectral-cnn" / "best.ckpt"
    signal = np.random.default_rng(0).normal(size=(2000, 4))
    missing = tmp_path / "missing.csv"
    np.savetxt(missing, signal, delimiter=",", header="PPG1,PPG2,ACCx,ACCy", comments="")
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(missing), "--fs", "125"]) == 2
    assert "has 4 channels (PPG1, PPG2, ACCx, ACCy), the model expects 5" in capsys.readouterr().err
    five = tmp_path / "slow.csv"
    np.savetxt(
        five,
        np.hstack([signal, signal[:, :1]]),
        delimiter=",",
        header="PPG1,PPG2,ACCx,ACCy,ACCz",
        comments="",
    )
    assert main(["predict", str(ckpt), str(five), "--fs", "6"]) == 2
    assert "at 6 Hz hold nothing above 3 Hz" in capsys.readouterr().err
    nan = tmp_path / "nan.csv"
    signal[5, 0] = np.nan
    np.savetxt(
        nan,
        np.hstack([signal, signal[:, :1]]),
        delimiter=",",
        header="PPG1,PPG2,ACCx,ACCy,ACCz",
        comments="",
    )
    assert main(["predict", str(ckpt), str(nan), "--fs", "125"]) == 2
    assert "NaN or infinite" in capsys.readouterr().err
