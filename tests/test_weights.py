"""Sample weights (--weight COL): they weight the loss and every metric, and are no feature."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dcn_cli.commands import app

FAST = ["--deep-layers", "8", "--embedding-dim", "4", "--patience", "0", "--batch-size", "64"]


def weighted_log(path: Path, rows: int = 480, seed: int = 0) -> Path:
    """Rows of group a are clicked half the time; clicks weigh 3, the rest 1: the
    weighted click rate of a is 0.75, the plain one 0.5. Group b is never clicked."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["group", "noise", "clicked", "w"])
        for i in range(rows):
            group = "a" if i % 2 else "b"
            clicked = int(group == "a" and (i // 2) % 2 == 0)
            out.writerow([group, f"{rng.normal():.3f}", clicked, 3 if clicked else 1])
    return path


def predictions(runner, ckpt: Path, data: Path) -> dict[str, float]:
    result = runner.invoke(app, ["predict", str(ckpt), "--data", str(data)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()[1:]
    with open(data) as handle:
        groups = [row["group"] for row in csv.DictReader(handle)]
    scores = np.array([float(line.split(",")[-1]) for line in lines])
    return {g: float(scores[np.array(groups) == g].mean()) for g in ("a", "b")}


@pytest.mark.parametrize(
    "budget",
    # Streamed, it trains as long again to the same figures: in the slow tier (CI runs it).
    [None, pytest.param("0", marks=pytest.mark.slow)],
    ids=["in-memory", "streamed"],
)
def test_weights_pull_the_model_to_the_weighted_rate(runner, tmp_path, monkeypatch, budget):
    monkeypatch.chdir(tmp_path)
    if budget is not None:
        monkeypatch.setenv("DCN_MEMORY_BUDGET_MB", budget)
    data = weighted_log(tmp_path / "log.csv")
    args = ["train", "--data", str(data), "--label", "clicked", *FAST, "--epochs", "12"]
    args += ["--lr", "0.05"]
    weighted = runner.invoke(app, [*args, "--weight", "w", "--out", "weighted"])
    assert weighted.exit_code == 0, weighted.output
    with_weights = predictions(runner, tmp_path / "weighted", data)
    assert with_weights["a"] == pytest.approx(0.75, abs=0.08)
    assert with_weights["b"] < 0.1
    if budget is not None:
        return  # streamed: the weights reach the loss; the unweighted rate is checked once
    plain = runner.invoke(app, [*args, "--ignore", "w", "--out", "plain"])
    assert plain.exit_code == 0, plain.output
    assert predictions(runner, tmp_path / "plain", data)["a"] == pytest.approx(0.5, abs=0.08)
    record = json.loads((tmp_path / "weighted" / "config.json").read_text())
    assert [f["name"] for f in record["model"]["features"]] == ["group", "noise"]


def test_every_metric_is_weighted(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = weighted_log(tmp_path / "log.csv")
    args = ["train", "--data", str(data), "--label", "clicked", "--weight", "w", *FAST]
    assert runner.invoke(app, [*args, "--epochs", "2"]).exit_code == 0
    result = runner.invoke(app, ["evaluate", "ckpt", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    scored = runner.invoke(app, ["predict", "ckpt", "--data", str(data)])
    p = np.array([float(line.split(",")[-1]) for line in scored.stdout.splitlines()[1:]])
    with open(data) as handle:
        rows = list(csv.DictReader(handle))
    y = np.array([float(r["clicked"]) for r in rows])
    w = np.array([float(r["w"]) for r in rows])
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    logloss = -np.sum(w * (y * np.log(clipped) + (1 - y) * np.log(1 - clipped))) / w.sum()
    accuracy = np.sum(w * ((p > 0.5) == y)) / w.sum()
    assert metrics["logloss"] == pytest.approx(logloss, rel=1e-4)
    assert metrics["accuracy"] == pytest.approx(accuracy, rel=1e-5)
    assert metrics["rows"] == len(rows)  # rows are counted, not weighed

    unweighted = tmp_path / "no-w.csv"
    lines = [",".join(r[:3]) for r in csv.reader(open(data))]
    unweighted.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["evaluate", "ckpt", "--data", str(unweighted)])
    assert result.exit_code == 1
    assert "no weight column 'w'; the checkpoint was trained with weights" in result.stderr


@pytest.mark.parametrize(
    "cell, message",
    [
        ("-1", "log.csv:12: weight 'w' is -1; a weight must be >= 0"),
        ("nan", "log.csv:12: --weight 'w' holds 'nan'; weights are numbers"),
        ("", "log.csv:12: weight 'w' is empty"),
        ("x", "log.csv:12: --weight 'w' holds 'x'; weights are numbers"),
    ],
)
def test_a_bad_weight_is_one_error_naming_its_line(runner, tmp_path, monkeypatch, cell, message):
    monkeypatch.chdir(tmp_path)
    lines = weighted_log(tmp_path / "log.csv").read_text().splitlines()
    group, noise, clicked, _ = lines[11].split(",")
    lines[11] = ",".join([group, noise, clicked, cell])
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "--data", "log.csv", "--label", "clicked", "--weight", "w", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--weight", "nope"], "--weight names 'nope', which is not a column"),
        (["--weight", "clicked"], "'clicked' is the label; --weight cannot name it"),
        (["--weight", "w,noise"], "--weight names one column, got 'w,noise'"),
        (["--weight", "w", "--numerical", "w"], "'w' is named by both --numerical and --weight"),
        (["--weight", "group"], "log.csv:2: --weight 'group' holds 'b'; weights are numbers"),
    ],
)
def test_a_bad_weight_option_is_one_error(runner, tmp_path, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    weighted_log(tmp_path / "log.csv")
    result = runner.invoke(app, ["train", "--data", "log.csv", "--label", "clicked", *flags])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr


def test_a_negative_parquet_weight_names_its_row(tmp_path):
    from dcn_cli.data.sources import open_table
    from dcn_cli.errors import DcnError

    table = pa.table({"g": ["a", "b", "a"], "w": [1.0, -2.0, 1.0], "y": [0, 1, 0]})
    pq.write_table(table, tmp_path / "t.parquet")
    opened = open_table(str(tmp_path / "t.parquet"), label="y", weight="w")
    assert opened.schema.weight == "w" and [c.name for c in opened.schema.features] == ["g"]
    with pytest.raises(DcnError, match=r"t.parquet: row 2: weight 'w' is negative"):
        list(opened.chunks())


def test_a_schema_json_weight_column(tmp_path):
    from dcn_cli.data.prepare import DataOptions, prepare
    from dcn_cli.data.sources import open_table
    from tests.helpers import clicks, set_role

    clicks(tmp_path / "c", rows=60)
    set_role(tmp_path / "c", "price", "weight")
    table = open_table(str(tmp_path / "c"))
    assert table.schema.weight == "price"
    prepared = prepare(table, DataOptions(cache=False))
    assert "price" not in [f.name for f in prepared.features]


def test_compare_and_describe_take_the_weight(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weighted_log(tmp_path / "log.csv")
    data = ["--data", "log.csv", "--label", "clicked", "--weight", "w"]
    result = runner.invoke(app, ["describe", *data[1:], "--json"])
    assert result.exit_code == 0, result.output
    roles = {c["name"]: c["role"] for c in json.loads(result.stdout)["columns"]}
    assert roles == {
        "group": "categorical",
        "noise": "numerical",
        "clicked": "label",
        "w": "weight",
    }
    args = ["compare", "dnn", "--runs", "1", *data, "--epochs", "1", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"][0]["runs"][0] > 0.5  # a weighted test AUC


def test_weights_that_are_all_zero_are_one_error(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = weighted_log(tmp_path / "log.csv").read_text().splitlines()
    zero = [lines[0]] + [",".join([*line.split(",")[:3], "0"]) for line in lines[1:]]
    (tmp_path / "zero.csv").write_text("\n".join(zero) + "\n")
    args = ["train", "--data", "zero.csv", "--label", "clicked", "--weight", "w", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: zero.csv: the training rows' weights ('w') are all 0; a model needs rows "
        "that count\n"
    )
