"""dcn tune: the space, the study that survives a kill, and what it writes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import clicks

from dcn_cli import fileio
from dcn_cli.commands import app
from dcn_cli.train.space import DEFAULT_SPACE, parse_space, read_space

SPACE = {
    "lr": {"low": 0.001, "high": 0.03, "log": True},
    "embedding_dim": {"choices": [2, 4]},
    "deep_layers": "8",
}
FAST = ["--epochs", "2", "--patience", "1"]


def test_the_default_space_is_valid():
    params, fixed = parse_space(DEFAULT_SPACE, {})
    assert {p.name for p in params} == set(DEFAULT_SPACE) and fixed == {}
    params, fixed = parse_space(DEFAULT_SPACE, {"lr": 0.01, "deep_layers": "64,32"})
    assert "lr" not in {p.name for p in params}
    assert fixed == {"lr": 0.01, "deep_layers": "64,32"}  # a flag pins a setting


def test_a_toml_space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        'lr = {low = 1e-4, high = 1e-2, log = true}\narch = "cross"\n'
        'deep_layers = {choices = ["64,64", [128, 64]]}\n'
        'projection_dim = {choices = ["full", 8]}\n'
    )
    params, fixed = parse_space(read_space(path), {})
    assert fixed == {"arch": "cross"}
    assert [p.choices for p in params if p.name == "deep_layers"] == [("64,64", "128,64")]
    assert [p.choices for p in params if p.name == "projection_dim"] == [(None, 8)]


@pytest.mark.parametrize(
    "space, message",
    [
        ({"learning_rate": {"low": 0.1, "high": 0.2}}, "unknown parameter(s) learning_rate"),
        ({"lr": {"low": 0.1, "high": 0.01}}, "lr: empty range, low 0.1 is above high 0.01"),
        ({"dropout": {"choices": []}}, "dropout: choices must be a non-empty list"),
        ({"cross_layers": {"low": 1.5, "high": 3}}, "is a whole number; got 1.5"),
        ({"optimizer": {"choices": ["adam", "rmsprop"]}}, "optimizer must be one of"),
        ({"dropout": {"low": 0.0, "high": 0.5, "log": True}}, "a log range must start above 0"),
        ({"optimizer": {"low": 1, "high": 2}}, "optimizer takes choices, not a range"),
        ({"lr": {"low": 0.1}}, "lr: give low and high, or choices"),
        ({"lr": {"low": 0.1, "high": 0.2, "step": 1}}, "unknown key(s) step"),
        ({"lr": 0.01}, "nothing left to search"),
        ({}, "is empty; name at least one setting to search"),
        ({"lr": {"choices": [0.1], "low": 0.01, "high": 0.1}}, "choices, or low and high, not"),
    ],
)
def test_a_bad_space_is_one_error_naming_the_file(runner, tmp_path, space, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    result = runner.invoke(app, ["tune", "--space", str(path), "--out", str(tmp_path / "t")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert not (tmp_path / "t").exists()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study of 2 trials on the small click data, run once."""
    from typer.testing import CliRunner

    home = tmp_path_factory.mktemp("tune")
    data = clicks(home / "data", 600)
    space = home / "space.json"
    space.write_text(json.dumps(SPACE))
    argv = ["tune", "--data", str(data), "--space", str(space), "--out", str(home / "t"), *FAST]
    result = CliRunner().invoke(app, [*argv, "--trials", "2"])
    assert result.exit_code == 0, result.output
    return home, argv, result


def test_tune_writes_trials_best_settings_checkpoint_and_figures(study):
    home, _, result = study
    out = home / "t"
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["number"] for r in rows] == ["0", "1"]
    assert {r["state"] for r in rows} <= {"complete", "pruned"}
    assert float(rows[0]["lr"]) == 0.001  # the first trial: dcn train's default, in range
    summary = json.loads((out / "trials.json").read_text())
    best = summary["best_settings"]
    assert summary["metric"] == "auc" and summary["split"] == "validation"
    assert best == json.loads((out / "best.json").read_text())
    assert best["deep_layers"] == [8] and best["embedding_dim"] in (2, 4)
    complete = [float(r["value"]) for r in rows if r["state"] == "complete"]
    assert summary["best_value"] == pytest.approx(max(complete))
    for figure in ("history.png", "importance.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    # The checkpoint is the best trial again: the same split and seed give its value.
    record = json.loads((out / "best" / "config.json").read_text())
    assert record["training"]["lr"] == best["lr"]
    with open(out / "best" / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    best_epoch = min(history, key=lambda row: float(row["val_loss"]))
    assert float(best_epoch["val_auc"]) == pytest.approx(summary["best_value"], abs=1e-6)
    assert "test metrics of its checkpoint" in result.stdout
    assert "trial 1 " in result.stderr


def test_best_json_is_a_model_file_for_train_and_compare(runner, study, tmp_path):
    home, _, _ = study
    best = home / "t" / "best.json"
    settings = json.loads(best.read_text())
    ckpt = tmp_path / "ck"
    flags = ["--data", str(home / "data"), "--epochs", "1", "--patience", "0"]
    argv = ["train", "--config", str(best), "--lr", "0.5", "--out", str(ckpt), *flags]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    record = json.loads((ckpt / "config.json").read_text())
    assert record["model"]["deep_layers"] == [8] == settings["deep_layers"]
    assert record["model"]["embedding_dim"] == settings["embedding_dim"]
    assert record["training"]["lr"] == 0.5  # a flag wins over the file
    out = tmp_path / "cmp"
    compared = runner.invoke(
        app, ["compare", "cross", str(best), "--runs", "1", "--out", str(out), *flags]
    )
    assert compared.exit_code == 0, compared.output
    models = json.loads((out / "comparison.json").read_text())["models"]
    assert models[1]["training"]["lr"] == settings["lr"] and "training" not in models[0]
    assert "best trains with its own lr" in compared.stdout


def test_the_same_command_continues_the_study(runner, study):
    home, argv, _ = study
    result = runner.invoke(app, [*argv, "--trials", "3"])
    assert result.exit_code == 0, result.output
    rows = json.loads((home / "t" / "trials.json").read_text())["trials"]
    assert [r["number"] for r in rows] == [0, 1, 2]
    drawn = [(r["lr"], r["embedding_dim"]) for r in rows]
    assert len(set(drawn)) == 3  # a continued study does not draw its first trials again
    assert "trial 2 " in result.stderr and "trial 0 " not in result.stderr
    # What a tune killed while writing its outputs left is cleared, not refused.
    left = home / "t" / f".trials.csv.{fileio._HOST}-999999999-abcd1234.csv"
    left.write_text("half a table")
    done = runner.invoke(app, [*argv, "--trials", "3"])
    assert done.exit_code == 0, done.output
    assert len(json.loads((home / "t" / "trials.json").read_text())["trials"]) == 3
    assert not left.exists()


def test_a_group_column_that_is_not_there_is_one_error_before_any_trial(runner, tmp_path):
    out = tmp_path / "t"
    argv = ["tune", "--data", str(clicks(tmp_path / "data", 200)), "--out", str(out)]
    result = runner.invoke(app, [*argv, "--metric", "gauc", "--group", "nope"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "no column 'nope' to group rows by (--group)" in result.stderr
    assert not out.exists()


def test_trials_that_fail_again_and_again_end_the_search(runner, tmp_path, monkeypatch):
    from dcn_cli.errors import DcnError
    from dcn_cli.train import tune

    def fail(*args):
        raise DcnError("the validation split holds one label only; auc is undefined")

    monkeypatch.setattr(tune, "_train_trial", fail)
    data = clicks(tmp_path / "data", 200)
    argv = ["tune", "--data", str(data), "--out", str(tmp_path / "t"), "--trials", "50"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1
    assert result.stderr.count("failed: the validation split holds one label") == tune.MAX_FAILURES
    assert result.stderr.endswith(
        f"Error: {tune.MAX_FAILURES} trials in a row failed; the last: the validation split "
        "holds one label only; auc is undefined\n"
    )


def test_a_study_made_otherwise_is_one_error(runner, study, tmp_path):
    home, argv, _ = study
    other = clicks(tmp_path / "other", 500, seed=3)
    changes = {
        "metric": [*argv, "--metric", "logloss"],
        "epochs": [*argv, "--epochs", "3"],
        "data, rows": [str(other) if a == str(home / "data") else a for a in argv],
    }
    for what, changed in changes.items():
        result = runner.invoke(app, [*changed, "--trials", "3"])
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert f"its study was made with other settings ({what} differ)" in result.stderr


@pytest.mark.parametrize(
    "storage, message",
    [
        ("nonsense", "--storage nonsense: cannot open it"),
        ("postgresql://dcn:secret@127.0.0.1:1/x", "dcn:***@127.0.0.1:1/x: its database driver"),
        ("sqlite:////no/such/dir/study.db", "--storage sqlite:////no/such/dir/study.db: cannot"),
    ],
)
def test_a_storage_that_cannot_be_reached_is_one_error(runner, tmp_path, storage, message):
    data = clicks(tmp_path / "data", 200)
    out = tmp_path / "t"
    result = runner.invoke(
        app, ["tune", "--data", str(data), "--storage", storage, "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "secret" not in result.stderr  # a password in a URL is not echoed
    assert not out.exists()


def test_tune_refuses_a_directory_of_other_files(runner, tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["tune", "--out", str(tmp_path / "t")])
    assert result.exit_code == 1
    assert "holds files that are not a study's (notes.txt)" in result.stderr
    # Files named as tune names its outputs, in a directory that holds no study: the user's.
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "best.json").write_text("mine")
    result = runner.invoke(app, ["tune", "--out", str(tmp_path / "u")])
    assert result.exit_code == 1
    assert "holds files that are not a study's (best.json)" in result.stderr
    assert (tmp_path / "u" / "best.json").read_text() == "mine"
    (tmp_path / "v" / "best").mkdir(parents=True)
    (tmp_path / "v" / "study.db").write_text("")
    result = runner.invoke(app, ["tune", "--out", str(tmp_path / "v")])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: {tmp_path / 'v' / 'best'}: exists and is not a checkpoint; move it away\n"
    )
    result = runner.invoke(app, ["tune", "--group", "user", "--out", str(tmp_path / "w")])
    assert result.exit_code == 1 and "--group user is for --metric gauc" in result.stderr


def test_the_defaults_are_tried_again_when_their_trial_failed(runner, tmp_path, monkeypatch):
    from dcn_cli.errors import DcnError
    from dcn_cli.train import tune

    def fail(*args):
        raise DcnError("out of memory")

    data = clicks(tmp_path / "data", 200)
    argv = ["tune", "--data", str(data), "--out", str(tmp_path / "t"), "--epochs", "1"]
    monkeypatch.setattr(tune, "_train_trial", fail)
    assert runner.invoke(app, [*argv, "--trials", "2"]).exit_code == 1  # 5 failures
    monkeypatch.setattr(tune, "_train_trial", lambda *args: 0.5)
    result = runner.invoke(app, [*argv, "--trials", "2"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "t" / "trials.json").read_text())["trials"]
    defaults = {"lr": 0.001, "batch_size": 1024, "embedding_dim": 32, "cross_layers": 1}
    assert [r["state"] for r in rows] == ["fail"] * 5 + ["complete"] * 2
    for row in (rows[0], rows[5]):  # the defaults first, then first again after the failure
        assert {k: row[k] for k in defaults} == defaults


def test_a_trial_whose_process_died_is_failed_and_not_counted(tmp_path):
    """What kill -9 leaves (a trial running forever) is failed when the study opens again."""
    import optuna

    from dcn_cli.train.tune import counted, fail_orphans

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="dcn-tune")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    import socket

    trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", int(dead))
    alive = study.ask()
    alive.set_user_attr("host", socket.gethostname())
    alive.set_user_attr("pid", os.getppid())
    assert fail_orphans(study) == [0]
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL", "RUNNING"] and counted(study) == 0


@pytest.mark.slow
def test_kill_9_then_the_same_command(tmp_path):
    """A real SIGKILL inside a trial; the same command then finishes the study."""
    import sqlite3

    data = clicks(tmp_path / "data", 600)
    argv = [
        sys.executable,
        "-m",
        "dcn_cli",
        "tune",
        "--data",
        str(data),
        "--trials",
        "3",
        "--out",
        str(tmp_path / "t"),
        *FAST,
    ]
    process = subprocess.Popen(argv, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    db = tmp_path / "t" / "study.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            with sqlite3.connect(db) as con:
                states = [s for (s,) in con.execute("select state from trials")]
        except sqlite3.OperationalError:
            continue
        if len(states) >= 2 and states[-1] == "RUNNING":
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with sqlite3.connect(db) as con:
        running = [n for n, s in con.execute("select number, state from trials") if s == "RUNNING"]
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as con:
        trials = dict(con.execute("select number, state from trials order by number").fetchall())
        assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert all(trials[n] == "FAIL" for n in running)  # what the kill cut short counts for nothing
    assert sorted(trials) == list(range(len(trials)))
    assert sum(s in ("COMPLETE", "PRUNED") for s in trials.values()) == 3


def test_the_compare_hint_names_the_data_again(runner):
    from dcn_cli.commands.render import data_flags
    from dcn_cli.data.sources import DataSpec

    spec = DataSpec(
        data="my clicks.csv", label="y", lists="tags", min_count=1, validation=0.1, weight="w"
    )
    flags = data_flags(spec)
    assert flags == ["--data 'my clicks.csv'", "--label y", "--weight w", "--list tags",
                     "--min-count 1"]  # fmt: skip
    usage = runner.invoke(app, ["compare", "--help"], terminal_width=200).stdout
    assert all(flag.split()[0] in usage for flag in flags)


def test_gauc_over_one_validation_group_warns(runner, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "g.csv"
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["user", "item", "site", "clicked"])
        for _ in range(400):
            user, item = int(rng.integers(0, 20)), int(rng.integers(0, 30))
            clicked = int(rng.random() < 1 / (1 + np.exp(-np.sin(user) - np.cos(item))))
            out.writerow([f"u{user}", f"i{item}", "a", clicked])  # one site: one group
    argv = ["tune", "--data", str(path), "--label", "clicked", "--metric", "gauc"]
    argv += ["--trials", "1", "--epochs", "1", "--out", str(tmp_path / "t"), "--json"]
    result = runner.invoke(app, [*argv, "--group", "site"])
    assert result.exit_code == 0, result.output
    assert "holds 1 group(s) of --group site with both labels" in result.stderr
    assert json.loads(result.stdout)["metric"] == "gauc"


def test_best_json_lands_after_best_checkpoint(runner, tmp_path, monkeypatch):
    from dcn_cli.errors import DcnError
    from dcn_cli.train import study as outputs

    def stopped(*args, **kwargs):
        raise DcnError("stopped while training best/")

    monkeypatch.setattr(outputs, "train_best", stopped)
    data = clicks(tmp_path / "data", 300)
    argv = ["tune", "--data", str(data), "--trials", "1", "--epochs", "1"]
    result = runner.invoke(app, [*argv, "--out", str(tmp_path / "t")])
    assert result.exit_code == 1 and "stopped while training best/" in result.stderr
    # The trials are written; best.json, which names what best/ holds, is not.
    assert (tmp_path / "t" / "trials.json").exists()
    assert not (tmp_path / "t" / "best.json").exists()
