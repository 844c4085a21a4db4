"""The run report: a fake run directory in the documented format -> report.html + figures."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import roc_auc_score

from physiodl.errors import DataError, PhysioDLError
from physiodl.report import plots, write_report
from physiodl.report.classification import MAIN_METRICS, main_metric
from physiodl.report.comparison import format_value
from physiodl.report.rundir import read_run_dir

CLASSES = ["N", "A"]
MODELS = ["lstm-scratch", "resnet1d"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FULL_FIGURES = {
    "throughput", "scores", "confusion", "reliability", "roc", "learning_curves",
    "examples_signals", "examples_features",
}  # fmt: skip
COMPARISON = [
    {
        "model": "lstm-scratch", "arch": "LSTMNet", "n_params": "68354", "best_epoch": "4",
        "train_seconds": "123.456", "examples_per_second": "1532.4",
        "chunk_accuracy": "0.9012", "chunk_balanced_accuracy": "0.8411",
        "record_accuracy": "0.9127", "record_balanced_accuracy": "0.8533",
        "record_macro_f1": "0.8702", "record_auroc": "0.9342", "record_f1_N": "0.9511",
        "record_f1_A": "0.7893", "record_af_f1": "0.7893",
    },
    {
        "model": "resnet1d", "arch": "ResNet1d", "n_params": "1234567", "best_epoch": "2",
        "train_seconds": "987.65", "examples_per_second": "88.6",
        "chunk_accuracy": "0.8604", "chunk_balanced_accuracy": "0.8802",
        "record_accuracy": "0.9501", "record_balanced_accuracy": "0.9105",
        "record_macro_f1": "0.9154", "record_auroc": "0.9713", "record_f1_N": "0.9702",
        "record_f1_A": "0.8606", "record_af_f1": "0.8606",
    },
]  # fmt: skip


def _classification_metrics(accuracy: float, level: str, model: int) -> dict:
    metrics = {
        "n": 40 if level == "record" else 400,
        "accuracy": accuracy,
        "balanced_accuracy": accuracy - 0.05,
        "f1": {"N": accuracy + 0.02, "A": accuracy - 0.1},
        "precision": {"N": 0.95, "A": 0.7},
        "recall": {"N": 0.93, "A": 0.75},
        "macro_f1": accuracy - 0.04,
        "auroc": 0.93,
        "confusion": [[28 + model, 2 - model], [3 - 2 * model, 7 + 2 * model]],
        "cinc_score": None,
        "af_f1": accuracy - 0.1,
    }
    if level == "record":
        metrics["calibration"] = {
            "bin_centres": [0.55, 0.65, 0.75, 0.85, 0.95],
            "accuracy": [0.5 - 0.2 * model, None, 0.7 - 0.1 * model, 0.8, 0.97],
            "confidence": [0.56, None, 0.74, 0.86, 0.96],
            "counts": [4, 0, 6, 10, 20],
            "ece": 0.0321 + 0.05 * model,
        }
    return metrics


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_run_dir(root: Path, task: str = "classification") -> Path:
    """A run directory with every file of docs/architecture.md for two N/A classifiers."""
    run = root / "runs" / "af2017" / "20250101-120000"
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    models = {}
    for i, (name, row) in enumerate(zip(MODELS, COMPARISON, strict=True)):
        models[name] = {
            "arch": row["arch"],
            "n_params": int(row["n_params"]),
            "best_epoch": int(row["best_epoch"]),
            "epochs_trained": 5,
            "train_seconds": float(row["train_seconds"]),
            "examples_per_second": float(row["examples_per_second"]),
            "chunk": _classification_metrics(float(row["chunk_accuracy"]), "chunk", i),
            "record": _classification_metrics(float(row["record_accuracy"]), "record", i),
        }
        epochs = np.arange(5)
        _write_csv(
            run / "models" / name / "history.csv",
            [
                {
                    "epoch": e,
                    "train_loss": 0.7 / (e + 1),
                    "val_loss": 0.6 / (e + 1) + 0.05 * i,
                    "train_accuracy": 0.7 + 0.05 * e,
                    "val_accuracy": 0.68 + 0.04 * e,
                    "val_balanced_accuracy": 0.6 + 0.05 * e,
                    "epoch_seconds": 20.0,
                }
                for e in epochs
            ],
        )
        targets = np.array(["N"] * 30 + ["A"] * 10)
        p_a = np.clip(0.3 + (targets == "A") * (0.3 + 0.1 * i) + rng.normal(0, 0.2, 40), 0, 1)
        _write_csv(
            run / "models" / name / "predictions.csv",
            [
                {"id": f"A{k:05d}", "target": t, "prediction": "A" if p > 0.5 else "N",
                 "p_N": 1 - p, "p_A": p}
                for k, (t, p) in enumerate(zip(targets, p_a, strict=True))
            ],
        )  # fmt: skip
    metrics = {"recipe": "af2017", "task": task, "classes": CLASSES, "models": models}
    (run / "metrics.json").write_text(json.dumps(metrics))
    _write_csv(run / "comparison.csv", COMPARISON)

    fs, feature_fs = 300.0, 300.0 / 28
    arrays: dict[str, np.ndarray] = {
        "ids": np.array(["A00001", "A00002", "A00003", "A00004"]),
        "labels": np.array(["N", "A", "N", "A"]),
        "raw_fs": np.array(fs),
        "feature_fs": np.array(feature_fs),
        "feature_channels": np.array([f"ECG {f:.1f}Hz" for f in np.linspace(0, 150, 17)]),
    }
    for k in range(4):
        seconds = 30 + 5 * k
        t = np.arange(int(seconds * fs)) / fs
        arrays[f"raw_{k}"] = np.sin(2 * np.pi * 1.2 * t) ** 15 + 0.05 * rng.normal(size=t.size)
        arrays[f"raw_{k}"] = arrays[f"raw_{k}"].astype(np.float32)
        frames = int(seconds * feature_fs)
        arrays[f"features_{k}"] = rng.normal(size=(17, frames)).astype(np.float32)
    np.savez(run / "examples.npz", **arrays)

    metadata = {
        "physiodl": "0.1.0", "python": "3.11.2", "torch": "2.13.0", "lightning": "2.5.0",
        "numpy": "2.4.6", "platform": "Linux-x86_64", "command": "physiodl run af2017.toml",
        "seed": 12345, "started": "2025-01-01T12:00:00", "finished": "2025-01-01T12:21:40",
        "duration_s": 1300.2,
        "data": {
            "path": "cinc2017/training2017.zip", "sha256": "ab" * 32, "n_records": 5788,
            "class_counts": {"N": 5050, "A": 738}, "excluded": {"O": 2456, "~": 284},
            "skipped": {"shorter than 9 s (<2700 samples)": ["A01234", "A05678"],
                        "NaN samples": []},
        },
        "split": {"kind": "stratified", "train": 4630, "validation": 1158},
    }  # fmt: skip
    (run / "metadata.json").write_text(json.dumps(metadata))
    (run / "config.toml").write_text(
        'name = "af2017"\nseed = 12345\n[data]  # N & A <only>\nclasses = ["N", "A"]\n'
    )
    return run


def _embedded_pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_run_dir(tmp_path_factory.mktemp("report"))
    out = write_report(run)
    assert out == run / "report.html"
    return run, out.read_text(encoding="utf-8")


def test_report_is_self_contained_with_every_figure(full_report: tuple[Path, str]) -> None:
    run, text = full_report
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert "<style>" in text
    pngs = _embedded_pngs(text)
    assert len(pngs) == len(FULL_FIGURES)
    files = {p.stem: p.read_bytes() for p in (run / "figures").glob("*.png")}
    assert set(files) == FULL_FIGURES
    assert sorted(pngs) == sorted(files.values())
    for name, png in files.items():
        assert png.startswith(PNG_MAGIC), name
        image = imread(io.BytesIO(png))
        assert image.shape[0] >= 200 and image.shape[1] >= 400, name
        assert image[..., :3].std() > 0.05, f"{name} is nearly blank"


def test_report_shows_models_and_every_comparison_value(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    for model in MODELS:
        assert f"<td>{model}</td>" in text
    for row in COMPARISON:
        for column, raw in row.items():
            assert f">{format_value(column, raw)}<" in text, (column, raw)
    # known renderings, independent of format_value
    for shown in ("68,354", "1,234,567", "123.5", "1,532", "89", "0.913", "0.950", "0.934"):
        assert f">{shown}<" in text
    assert "af2017" in text and "2025-01-01 12:00:00" in text and "21 min 40 s" in text


def test_best_value_per_metric_column_is_bold(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    for best in ("0.950", "0.971", "0.901", "0.880", "0.861"):
        assert f"<strong>{best}</strong>" in text
    for other in ("0.913", "0.934", "0.860", "0.841", "0.789"):
        assert f"<strong>{other}</strong>" not in text
    for info in ("1,234,567", "1,532", "4"):  # model facts are not ranked
        assert f"<strong>{info}</strong>" not in text


def test_run_section_lists_skipped_records_and_recipe(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    assert 'class="notice warning">2 records were skipped (shorter than 9 s' in text
    assert "A01234, A05678" in text
    assert "NaN samples" not in text  # an empty reason skipped nothing
    assert "ab" * 32 in text and "stratified" in text and "12345" in text
    assert (
        "<details><summary>config.toml (resolved)</summary><pre>name = &quot;af2017&quot;" in text
    )


def test_missing_metrics_json_names_the_file(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    (run / "metrics.json").unlink()
    with pytest.raises(PhysioDLError, match=r"metrics\.json not found"):
        write_report(run)
    assert not (run / "report.html").exists()


def test_missing_optional_pieces_are_named_not_fatal(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    for relative in ("models/resnet1d/history.csv", "models/lstm-scratch/predictions.csv",
                     "examples.npz", "comparison.csv", "config.toml", "metadata.json"):  # fmt: skip
        (run / relative).unlink()
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["models"]["resnet1d"]["record"]["calibration"]
    metrics["models"]["resnet1d"]["record"] |= {"auroc": None, "auroc_note": "class A absent"}
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = write_report(run).read_text(encoding="utf-8")
    assert "No history.csv for: resnet1d." in text
    assert "No predictions.csv for: lstm-scratch." in text
    assert "examples.npz not found" in text
    assert "comparison.csv not found" in text
    assert "config.toml not found" in text
    assert "metadata.json not found" in text
    assert "No record-level calibration for: resnet1d." in text
    assert "No record-level AUROC for resnet1d: class A absent." in text
    stems = {p.stem for p in (run / "figures").glob("*.png")}
    assert stems == FULL_FIGURES - {"examples_signals", "examples_features"}
    assert len(_embedded_pngs(text)) == len(stems)


@pytest.mark.parametrize(
    ("relative", "content", "message"),
    [
        ("models/resnet1d/predictions.csv", "id,target,prediction,p_N\nA00001,N,N,0.9\n",
         r"resnet1d/predictions\.csv: the columns \['p_A'\] are missing"),
        ("models/resnet1d/predictions.csv", "id,target,prediction,p_N,p_A\nA00001,X,N,0.9,0.1\n",
         r"predictions\.csv: row 2: 'X' is not one of the classes"),
        ("models/lstm-scratch/history.csv", "epoch,train_loss\n0,high\n",
         r"lstm-scratch/history\.csv: a value is not a number"),
        ("metadata.json", '{"duration_s": "long"}', r"metadata\.json: duration_s is not a number"),
        ("metrics.json", "{", r"metrics\.json: not valid JSON .*with `physiodl run`$"),
    ],
)  # fmt: skip
def test_malformed_file_is_an_error_naming_it(
    tmp_path: Path, relative: str, content: str, message: str
) -> None:
    run = make_run_dir(tmp_path)
    (run / relative).write_text(content)
    with pytest.raises(DataError, match=message):
        write_report(run)
    assert not (run / "figures").exists()  # files are checked before any figure is drawn


def test_main_metric_is_cinc_score_when_every_model_has_it(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    for entry in metrics["models"].values():
        entry["record"]["cinc_score"] = 0.8
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main_metric(read_run_dir(run)) == MAIN_METRICS[0]
    metrics["models"]["resnet1d"]["record"]["cinc_score"] = None
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main_metric(read_run_dir(run)) == MAIN_METRICS[1]


def test_text_from_the_run_is_escaped(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    assert "<2700" not in text and "<only>" not in text and "N & A" not in text
    assert "(&lt;2700 samples)" in text and "# N &amp; A &lt;only&gt;" in text


def test_regression_run_shows_its_metrics_table(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["task"] = "regression"
    for relative in ("examples.npz", *(f"models/{m}/history.csv" for m in MODELS)):
        (run / relative).unlink()  # fewer figures: a quicker test
    for entry in metrics["models"].values():
        entry["record"] = {"n": 12, "mae": 2.345, "rmse": 3.456, "bias": -0.5, "within_5": 0.9,
                           "within_10": 0.99, "pearson_r": 0.95}  # fmt: skip
        entry["chunk"] = {"n": 120, "mae": 3.0, "rmse": 4.0, "bias": 0.25, "within_5": 0.8,
                          "within_10": 0.95, "pearson_r": 0.9}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = write_report(run).read_text(encoding="utf-8")
    for shown in ("mae", "pearson_r", "2.345", "3.456", "-0.500", "0.250", "120"):
        assert f">{shown}<" in text
    assert "Confusion matrices" not in text  # classification sections only for classification
    assert {p.stem for p in (run / "figures").glob("*.png")} == {"throughput"}


@pytest.mark.parametrize(
    ("column", "raw", "shown"),
    [
        ("n_params", "1234567", "1,234,567"),
        ("best_epoch", "12", "12"),
        ("train_seconds", "1234.56", "1,234.6"),
        ("examples_per_second", "15321.7", "15,322"),
        ("record_accuracy", "0.91249", "0.912"),
        ("record_auroc", "", "—"),
        ("arch", "LSTMNet", "LSTMNet"),
    ],
)
def test_format_value(column: str, raw: str, shown: str) -> None:
    assert format_value(column, raw) == shown


def test_roc_legend_matches_sklearn_auc(tmp_path: Path) -> None:
    is_positive = np.array([0, 0, 1, 1, 0, 1], dtype=bool)
    score = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    colours = plots.model_colours(["m"])
    fig = plots.roc_curves({"m": (is_positive, score)}, "A", colours)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"m (AUC {roc_auc_score(is_positive, score):.3f})" in labels


def test_example_signal_axes_are_a_ten_second_excerpt_in_seconds(tmp_path: Path) -> None:
    examples = read_run_dir(make_run_dir(tmp_path)).examples
    assert examples is not None
    groups = {"N": [examples.items[0]], "A": [examples.items[1]]}
    fig = plots.example_signals(groups, examples.raw_fs, seconds=10.0)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "amplitude (mV)"
    t = ax.lines[0].get_xdata()
    assert t[0] == pytest.approx(10.0) and t[-1] == pytest.approx(20.0 - 1 / examples.raw_fs)


def test_excerpt_channel_frequencies_and_history_metrics() -> None:
    assert plots.excerpt(9000, 300.0, 10.0) == (10.0, 20.0)
    assert plots.excerpt(1500, 300.0, 10.0) == (0.0, 5.0)
    np.testing.assert_allclose(plots.channel_frequencies(["ECG 0.0Hz", "ECG 9.4Hz"]), [0, 9.4])
    assert plots.channel_frequencies(["band 1", "band 2"]) is None
    history = dict.fromkeys(["epoch", "train_accuracy", "val_loss", "val_auroc", "epoch_seconds"])
    assert plots.history_metrics(history) == ["loss", "accuracy", "auroc"]  # type: ignore[arg-type]
    colours = plots.model_colours([f"m{i}" for i in range(12)])
    assert len(set(colours.values())) == 12
