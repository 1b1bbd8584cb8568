"""dcn train and dcn evaluate, end to end through the CLI, on small real files."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import clicks

from dcn_cli import backend
from dcn_cli.commands import app
from dcn_cli.data.generate import generate
from dcn_cli.fileio import atomic_path

keras = backend.load()

FAST = ["--epochs", "2", "--batch-size", "256", "--deep-layers", "16", "--patience", "0"]


@pytest.fixture(scope="module")
def poly_dir(tmp_path_factory):
    return generate("poly", tmp_path_factory.mktemp("data") / "poly", rows=1500, function="f2")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate("poly", root / "poly", rows=1500, function="f2")
    clicks(root / "ctr", rows=1500)
    return root


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_writes_a_complete_checkpoint(runner, datasets, tmp_path):
    out = tmp_path / "ckpt"
    result = invoke(runner, "train", "--data", datasets / "poly", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    assert "rmse" in result.stdout and "params" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "history.csv",
        "logs",
        "metrics.json",
        "model.keras",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"rmse", "mae", "params", "train_seconds"}
    # stacked: 4 raw inputs -> cross (4*4+4) -> deep 16 (4*16+16) -> logit (16+1)
    assert metrics["params"] == 20 + 80 + 17
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    record = json.loads((out / "config.json").read_text())
    assert record["training"]["epochs"] == 2 and record["training"]["seed"] == 0
    assert record["data"]["data"] == str(datasets / "poly")
    assert record["feature_map"][0] == {"name": "x1", "offset": 0, "width": 1}
    assert {"tensorflow", "keras", "dcn"} <= set(record["versions"])
    assert any((out / "logs").rglob("*tfevents*"))

    # Plain Keras loads it in safe mode, and it serves raw rows on its own.
    model = keras.models.load_model(out / "model.keras", safe_mode=True)
    rows = {f"x{i}": np.array([0.5, -0.5], "float32") for i in range(1, 5)}
    assert model.predict(rows, verbose=0).shape == (2, 1)


def test_evaluate_reproduces_the_test_metrics(runner, datasets, tmp_path):
    out = tmp_path / "ckpt"
    assert invoke(runner, "train", "--data", datasets / "poly", "--out", out, *FAST).exit_code == 0
    result = invoke(runner, "evaluate", out, "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    saved = json.loads((out / "metrics.json").read_text())
    assert got["rmse"] == pytest.approx(saved["rmse"], rel=1e-6)
    assert got["rows"] == saved["test_rows"]
    # Other data with the same features: every row is scored.
    other = generate("poly", tmp_path / "other", rows=300, function="f2", seed=9)
    assert other.task == "regression"
    result = invoke(runner, "evaluate", out, "--data", tmp_path / "other", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 300


def test_binary_task_reports_auc_logloss_accuracy(runner, datasets, tmp_path):
    out = tmp_path / "ckpt"
    result = invoke(
        runner,
        "train",
        "--data",
        datasets / "ctr",
        "--out",
        out,
        "--json",
        "--embedding-dim",
        "4",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {"auc", "logloss", "accuracy"}
    # The figures, recomputed from the saved model's test-split predictions.
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.model.checkpoint import load_model, load_record

    rows = DataSpec.from_record(load_record(out)).prepare().arrays("test")
    y = rows.pop("clicked").astype("float64")
    p = load_model(out).predict(rows, verbose=0)[:, 0].astype("float64")
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    logloss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    assert metrics["logloss"] == pytest.approx(logloss, rel=1e-4)
    assert metrics["accuracy"] == pytest.approx(np.mean((p > 0.5) == (y == 1)), abs=1e-6)
    # Exact AUC: the chance a clicked row outscores an unclicked one (Keras
    # interpolates over 200 thresholds, so allow its small approximation error).
    pos, neg = p[y == 1], p[y == 0]
    exact_auc = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert metrics["auc"] == pytest.approx(exact_auc, abs=0.01)


def test_mixed_bfloat16_trains_evaluates_and_compares(runner, datasets, tmp_path):
    out, bf16 = tmp_path / "ckpt", ["--precision", "mixed_bfloat16"]
    data = ["--data", datasets / "ctr", "--embedding-dim", "4", "--epochs", "1", *bf16]
    result = invoke(runner, "train", "--out", out, "--json", "--deep-layers", "16", *data)
    assert result.exit_code == 0, result.output
    auc = json.loads(result.stdout)["auc"]
    assert json.loads((out / "config.json").read_text())["model"]["precision"] == "mixed_bfloat16"
    result = invoke(runner, "evaluate", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["auc"] == pytest.approx(auc, rel=1e-6)
    result = invoke(
        runner, "compare", "dcn", "--runs", "1", "--out", tmp_path / "c", "--json", *data
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"][0]["config"]["precision"] == "mixed_bfloat16"
    result = invoke(runner, "train", "--out", tmp_path / "x", *FAST, "--precision", "half")
    assert result.exit_code == 1 and "--precision must be one of float32" in result.stderr


def test_patience_keeps_a_validation_split(runner, datasets, tmp_path):
    """(And a note on the settings reaches stderr as a warning: test_model checks which.)"""
    out = tmp_path / "ckpt"
    extra = ["--patience", "1", "--projection-dim", "4"]
    result = invoke(runner, "train", "--data", datasets / "poly", "--out", out, *FAST, *extra)
    assert result.exit_code == 0, result.output
    assert "Warning: projection_dim 4 is at least half the input width 4" in result.stderr
    record = json.loads((out / "config.json").read_text())
    assert record["data"]["validation"] == 0.1 and record["data"]["rows"]["validation"] > 0
    with open(out / "history.csv") as handle:
        assert "val_loss" in next(csv.DictReader(handle))


def test_early_stopping_is_the_default(runner, datasets, tmp_path, monkeypatch):
    """Without --patience, train holds out 10% of train and stops after 5 epochs without
    a lower validation loss; with too few rows for that, it says so and trains on."""
    import dcn_cli.train.run

    out = tmp_path / "ckpt"
    result = invoke(runner, "train", "--data", datasets / "ctr", "--out", out, "--epochs", "1")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["training"]["patience"] == 5 and record["data"]["validation"] == 0.1
    assert record["data"]["rows"]["validation"] > 0
    monkeypatch.setattr(dcn_cli.train.run, "AUTO_VALIDATION", 1e-6)  # no row is drawn
    tiny = _write(tmp_path / "tiny.csv", "x,y\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(40)))
    result = invoke(runner, "train", "--data", tiny, "--label", "y", "--out", tmp_path / "t")
    assert result.exit_code == 0, result.output
    assert "too few rows to hold out a validation split; early stopping is off" in result.stderr


def test_a_run_that_stopped_early_says_so_and_resume_says_why_it_does_nothing(
    runner, datasets, tmp_path
):
    out = tmp_path / "ckpt"
    args = ["--data", datasets / "ctr", "--out", out, *FAST, "--epochs", "30", "--patience", "1"]
    args += ["--lr", "0.05"]  # a learning rate that soon overfits 1,200 rows
    result = invoke(runner, "train", *args)
    assert result.exit_code == 0, result.output
    ran = json.loads((out / "metrics.json").read_text())["epochs_run"]
    assert ran < 30 and f"stopped early after epoch {ran} of 30" in result.stderr
    result = invoke(runner, "train", "--resume", "--out", out, "--epochs", "30")
    assert result.exit_code == 0, result.output
    assert f"early stopping ended the run after {ran} of its 30 epochs" in result.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda d: d / "nope.csv", ["--label", "y"], "nope.csv: no such file or directory"),
        (lambda d: _write(d / "e.csv", ""), ["--label", "y"], "e.csv: empty file"),
        (lambda d: _write(d / "t.csv", "a,b\n1,2\n"), ["--label", "y"], "no label column 'y'"),
        (
            lambda d: _write(d / "t.csv", "a,y\n1,2\n1,2,3\n"),
            ["--label", "y"],
            "t.csv:3: expected 2 fields, found 3",
        ),
        (
            lambda d: _write(d / "t.csv", "a,y\n1,2\nzz,3\n"),
            ["--label", "y", "--numerical", "a"],
            "t.csv:3: column 'a': 'zz' is not a number",
        ),
        (
            lambda d: _write(d / "t.csv", "a,y\n1,0\n2,7\n"),
            ["--label", "y", "--task", "binary"],
            "t.csv:3: label 'y' is 7; a binary label must be 0 or 1",
        ),
        (lambda d: d, ["--arch", "tower"], "--arch must be one of stacked"),
        (lambda d: d, ["--cross-type", "diag"], "--cross-type must be one of matrix"),
        (lambda d: d, ["--optimizer", "lion"], "--optimizer must be one of adam"),
        (lambda d: d, ["--deep-layers", "a,b"], "--deep-layers must be comma-separated integers"),
        (lambda d: d, ["--epochs", "0"], "--epochs must be a positive integer, got 0"),
        (lambda d: d, ["--projection-dim", "0"], "--projection-dim must be a positive integer"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_train_bad_input_is_one_line_on_stderr(runner, datasets, tmp_path, make, extra, message):
    target = make(tmp_path)
    data = ["--data", target] if target != tmp_path else ["--data", datasets / "poly"]
    out = tmp_path / "ckpt"
    result = invoke(runner, "train", *data, "--out", out, *FAST, *extra)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (out / "model.keras").exists()


def test_evaluate_bad_input(runner, datasets, tmp_path):
    result = invoke(runner, "evaluate", tmp_path / "missing")
    assert result.exit_code == 1
    assert "missing: no such checkpoint directory" in result.stderr
    (tmp_path / "notckpt").mkdir()
    result = invoke(runner, "evaluate", tmp_path / "notckpt")
    assert result.exit_code == 1 and "not a dcn checkpoint" in result.stderr

    out = tmp_path / "ckpt"
    assert invoke(runner, "train", "--data", datasets / "poly", "--out", out, *FAST).exit_code == 0
    result = invoke(runner, "evaluate", out, "--data", datasets / "ctr")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {datasets / 'ctr'}: does not match the checkpoint's features: "
        "missing column(s) x1, x2, x3, x4\n"
    )  # other columns (here user, item...) are ignored


def test_atomic_path_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "model.keras"]
