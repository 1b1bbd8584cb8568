"""The metrics click-model engineers read: normalized entropy, calibration, group AUC,
and the reliability diagram, in evaluate and compare."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from helpers import clicks, exact_auc

from dcn_cli.commands import app
from dcn_cli.train.metrics import click_metrics, entropy, group_auc, reliability

FAST = ["--deep-layers", "8", "--embedding-dim", "4", "--patience", "0", "--epochs", "2"]


def brute_group_auc(groups, labels, scores, weights=None):
    """gAUC by definition: each group's AUC by counting pairs (each weighted by the
    product of its rows' weights), ties half; groups weighted by their total weight."""
    weights = np.ones(len(labels)) if weights is None else weights
    total, weight = 0.0, 0.0
    for g in np.unique(groups):
        at = groups == g
        y, s, w = labels[at] > 0.5, scores[at], weights[at]
        if 0 < y.sum() < len(y):
            pairs = w[y][:, None] * w[~y][None, :]
            sign = np.sign(s[y][:, None] - s[~y][None, :])
            total += np.sum(pairs * (sign + 1) / 2) / pairs.sum() * w.sum()
            weight += w.sum()
    return total / weight


def test_group_auc_is_the_weighted_mean_of_each_groups_auc():
    rng = np.random.default_rng(0)
    groups = rng.choice(["u1", "u2", "u3", "u4", "lone"], 400)
    labels = (rng.random(400) < 0.4).astype(float)
    labels[groups == "lone"] = 1.0  # one label only: left out
    scores = np.round(rng.random(400) + 0.3 * labels, 1)  # many ties
    value, used = group_auc(groups, labels, scores)
    assert used == 4
    assert value == pytest.approx(brute_group_auc(groups, labels, scores), abs=1e-12)
    weights = rng.uniform(0.5, 2.0, 400)
    value, _ = group_auc(groups, labels, scores, weights)
    assert value == pytest.approx(brute_group_auc(groups, labels, scores, weights), abs=1e-12)
    # Whole weights count as rows repeated; a weight of 0 as a row left out.
    weights = rng.integers(0, 3, 400)
    value, used = group_auc(groups, labels, scores, weights)
    again = np.repeat(np.arange(400), weights)
    assert (value, used) == pytest.approx(group_auc(groups[again], labels[again], scores[again]))


def test_group_auc_of_one_group_is_the_auc():
    rng = np.random.default_rng(1)
    labels = (rng.random(300) < 0.3).astype(float)
    scores = rng.random(300)
    value, used = group_auc(np.zeros(300, int), labels, scores)
    assert (value, used) == (pytest.approx(exact_auc(labels, scores)), 1)
    assert group_auc(np.arange(300), labels, scores) == (None, 0)  # every group one row


def test_normalized_entropy_and_calibration():
    y = np.array([1, 0, 0, 0], float)
    base = np.full(4, 0.25)  # the base rate: NE 1, calibration 1
    logloss = float(-np.mean(y * np.log(base) + (1 - y) * np.log(1 - base)))
    got = click_metrics(logloss, y.sum(), base.sum(), 4.0)
    assert got == {"ne": pytest.approx(1.0), "calibration": pytest.approx(1.0)}
    assert entropy(0.5) == pytest.approx(math.log(2))
    assert click_metrics(0.5, 0.0, 1.0, 4.0) == {}  # one label only: no NaN, no figure
    assert click_metrics(0.5, 4.0, 1.0, 4.0) == {}


def test_reliability_bins_hold_equal_rows():
    p = np.linspace(0.01, 0.99, 100)
    y = (p > 0.5).astype(float)
    bins = reliability(y, p, bins=10)
    assert bins["rows"] == [10.0] * 10
    assert bins["observed"][0] == 0.0 and bins["observed"][-1] == 1.0
    assert bins["predicted"] == sorted(bins["predicted"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of the small click data, trained once."""
    from typer.testing import CliRunner

    home = tmp_path_factory.mktemp("m")
    data = clicks(home / "data", 600)
    ckpt = home / "ckpt"
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(ckpt), *FAST])
    assert result.exit_code == 0, result.output
    return data, ckpt


def test_evaluate_reports_ne_calibration_and_gauc(runner, trained, tmp_path):
    data, ckpt = trained
    file = data / "data-00000.csv"
    result = runner.invoke(app, ["evaluate", str(ckpt), "--data", str(file), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    scored = runner.invoke(app, ["predict", str(ckpt), "--data", str(file), "--id", "user"])
    assert scored.exit_code == 0, scored.output
    lines = scored.stdout.strip().splitlines()[1:]
    users = np.array([line.split(",")[1] for line in lines])
    p = np.array([float(line.split(",")[-1]) for line in lines])
    with open(file) as handle:
        y = np.array([float(row["clicked"]) for row in csv.DictReader(handle)])
    rate = y.mean()
    logloss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert metrics["ne"] == pytest.approx(logloss / entropy(rate), rel=1e-4)
    assert metrics["calibration"] == pytest.approx(p.mean() / rate, rel=1e-4)
    assert "gauc" not in metrics
    grouped = runner.invoke(
        app, ["evaluate", str(ckpt), "--data", str(file), "--group", "user", "--json"]
    )
    assert grouped.exit_code == 0, grouped.output
    got = json.loads(grouped.stdout)
    assert got["gauc"] == pytest.approx(brute_group_auc(users, y, p), abs=1e-4)
    assert got["groups"] == sum(0 < y[users == u].sum() < (users == u).sum() for u in set(users))
    # Rows without a group are in none (not in one group of their own); one label: no AUC.
    lines = file.read_text().splitlines()
    at = lines[0].split(",").index("user")
    cells = [line.split(",") for line in lines[1:]]
    for row in cells[::3]:
        row[at] = ""
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join([lines[0], *(",".join(row) for row in cells)]) + "\n")
    grouped = runner.invoke(
        app, ["evaluate", str(ckpt), "--data", str(blank), "--group", "user", "--json"]
    )
    assert grouped.exit_code == 0, grouped.output
    kept = np.arange(len(y)) % 3 != 0
    expected = brute_group_auc(users[kept], y[kept], p[kept])
    assert json.loads(grouped.stdout)["gauc"] == pytest.approx(expected, abs=1e-4)
    clicked = tmp_path / "clicked.csv"
    label = lines[0].split(",").index("clicked")
    rows = [line for line in lines[1:] if line.split(",")[label] == "1"]
    clicked.write_text("\n".join([lines[0], *rows]) + "\n")
    result = runner.invoke(app, ["evaluate", str(ckpt), "--data", str(clicked), "--json"])
    assert result.exit_code == 0, result.output
    assert {"auc", "ne", "calibration"}.isdisjoint(json.loads(result.stdout))


def test_evaluate_plots_a_reliability_diagram(runner, trained, tmp_path):
    _, ckpt = trained
    plot = tmp_path / "rel.png"
    result = runner.invoke(app, ["evaluate", str(ckpt), "--group", "item", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "gauc" in result.stdout and f"wrote {plot}" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = runner.invoke(app, ["evaluate", str(ckpt), "--plot", str(plot)])
    assert again.exit_code == 1
    assert (
        again.stderr
        == f"Error: {plot}: exists; replace it with --force, or choose another --plot\n"
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--group", "nothing"], "no column 'nothing' to group rows by (--group)"),
        (["--group", "clicked", "--data"], "no group of --group clicked holds both labels"),
        (["--plot", "calibration.pdf"], "calibration.pdf: --plot draws a PNG"),
    ],
)
def test_a_bad_group_is_one_error(runner, trained, flags, message):
    data, ckpt = trained
    if flags[-1] == "--data":
        flags = [*flags, str(data / "data-00000.csv")]
    result = runner.invoke(app, ["evaluate", str(ckpt), *flags])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_compare_by_any_metric(runner, trained, tmp_path):
    data, _ = trained
    out = tmp_path / "cmp"
    args = ["compare", "cross", "--runs", "2", "--data", str(data), "--out", str(out)]
    result = runner.invoke(app, [*args, "--epochs", "1", "--metric", "gauc", "--group", "user"])
    assert result.exit_code == 0, result.output
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["metric"] == "gauc" and comparison["group"] == "user"
    assert all(0.0 < v < 1.0 for v in comparison["models"][0]["runs"])
    assert "gauc mean" in result.stdout
    ne = runner.invoke(app, [*args, "--epochs", "1", "--metric", "ne", "--force", "--json"])
    assert ne.exit_code == 0, ne.output
    assert json.loads(ne.stdout)["metric"] == "ne"
