"""Checkpoint truth: config.json and model.keras always describe one model, and --resume
continues a run exactly, from any moment it was stopped at."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_same_weights, clicks
from typer.testing import CliRunner

from dcn_cli import backend
from dcn_cli.commands import app
from dcn_cli.model.checkpoint import load_model

keras = backend.load()

# Stacked DCN with Adam and no dropout: a resumed run can then match an unbroken one.
RUN = ["--deep-layers", "8", "--dropout", "0", "--batch-size", "128", "--embedding-dim", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return clicks(tmp_path_factory.mktemp("data") / "clicks", rows=600)


@pytest.fixture(scope="module")
def whole(data, tmp_path_factory):
    """Four epochs in one go: what every resumed run must end at."""
    out = tmp_path_factory.mktemp("runs") / "whole"
    train(CliRunner(), data, out, "--epochs", "4")
    return out


@pytest.fixture(scope="module")
def one_epoch(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "one"
    train(CliRunner(), data, out, "--epochs", "1")
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "ckpt"))


def train(runner, data, out, *extra):
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), *RUN, *extra])
    assert result.exit_code == 0, result.output
    return result


def weights(out: Path) -> list[np.ndarray]:
    return load_model(out).get_weights()


def assert_same_checkpoints(a: Path, b: Path) -> None:
    assert_same_weights(weights(a), weights(b))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_a_new_run_never_replaces_an_old_one_unasked(runner, data, tmp_path):
    out = tmp_path / "ckpt"
    train(runner, data, out, "--epochs", "1")
    assert runner.invoke(app, ["explain", str(out)]).exit_code == 0
    before = snapshot(out)
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--arch", "deep"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out}: holds a training run already; continue it with --resume, "
        "replace it with --force, or choose another --out\n"
    )
    assert snapshot(out) == before
    # --force replaces it: the new model, its own config, and no stale figure.
    train(runner, data, out, "--epochs", "1", "--arch", "deep", "--force")
    record = json.loads((out / "config.json").read_text())
    assert record["model"]["arch"] == "deep"
    assert not (out / "explain.png").exists()
    assert load_model(out).name == "dcn_deep"


def test_files_land_with_normal_permissions(runner, data, tmp_path):
    old = os.umask(0o022)
    try:
        train(runner, data, tmp_path / "ckpt", "--epochs", "1")
    finally:
        os.umask(old)
    for name in ("model.keras", "config.json", "metrics.json", "history.csv"):
        assert (tmp_path / "ckpt" / name).stat().st_mode & 0o777 == 0o644, name


def test_resume_continues_exactly(runner, data, whole, tmp_path):
    """Two epochs, then two more with --resume, end where four epochs in one go do."""
    part = tmp_path / "part"
    train(runner, data, part, "--epochs", "2")
    # Bare --resume takes every setting, the data included, from the run; --epochs extends it.
    result = runner.invoke(app, ["train", "--resume", "--out", str(part), "--epochs", "4"])
    assert result.exit_code == 0, result.output
    assert_same_checkpoints(part, whole)
    history = (part / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3", "4"]
    record = json.loads((part / "config.json").read_text())
    assert record["training"]["epochs"] == 4 and record["data"]["data"] == str(data)
    metrics = json.loads((part / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4
    seconds = [float(line.split(",")[-1]) for line in history[1:]]
    assert metrics["train_seconds"] >= seconds[-1] >= seconds[1] > 0  # time adds up


def test_resume_of_a_finished_run_changes_nothing(runner, one_epoch, tmp_path):
    out = copy_of(one_epoch, tmp_path)
    before = snapshot(out)
    result = runner.invoke(app, ["train", "--resume", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert "the run finished already (1 epochs); nothing to do" in result.stderr
    assert json.loads(result.stdout) == json.loads(before["metrics.json"])
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--arch", "deep"], "--arch deep (the run has stacked)"),
        (["--embedding-dim", "16"], "--embedding-dim 16 (the run has 4)"),
        (["--data", "other.csv"], "--data other.csv (the run has "),
        (["--deep-layers", "8,8"], "--deep-layers 8,8 (the run has 8)"),
        (["--lr", "0.5"], "--lr 0.5 (the run has 0.001)"),
        (["--epochs", "1"], "--epochs 1 (the run has 2 epochs already)"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_resume_refuses_other_settings(runner, data, one_epoch, tmp_path, flags, message):
    out = copy_of(one_epoch, tmp_path)
    (out / "metrics.json").unlink()  # as if interrupted: resumable
    history = (out / "history.csv").read_text().splitlines()
    second = history[-1].replace("1", "2", 1)  # as if it had trained two epochs
    (out / "history.csv").write_text("\n".join([*history, second]) + "\n")
    before = snapshot(out)
    result = runner.invoke(app, ["train", "--resume", "--out", str(out), *flags])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {out}/config.json: --resume takes every setting")
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert snapshot(out) == before


def test_resume_accepts_the_runs_own_settings(runner, data, one_epoch, tmp_path):
    out = copy_of(one_epoch, tmp_path)
    same = ["--embedding-dim", "4", "--data", str(data), "--deep-layers", "8", "--epochs", "2"]
    result = runner.invoke(app, ["train", "--resume", "--out", str(out), *same])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2


def test_resume_needs_a_run(runner, tmp_path):
    result = runner.invoke(app, ["train", "--resume", "--out", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no such checkpoint directory" in result.stderr


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda lines: [lines[0], lines[1], "2,oops"], "history.csv:3: damaged history"),
        (lambda lines: [lines[0]], "history.csv: damaged history; train afresh with --force"),
        (lambda lines: [lines[0], "1,\0"], "history.csv:2: damaged history"),
    ],
    ids=["bad-number", "header-only", "nul-byte"],
)
def test_a_damaged_history_is_one_error_line(runner, one_epoch, tmp_path, damage, message):
    out = copy_of(one_epoch, tmp_path)
    (out / "metrics.json").unlink()
    lines = (out / "history.csv").read_text().splitlines()
    (out / "history.csv").write_text("\n".join(damage(lines)) + "\n")
    before = snapshot(out)
    result = runner.invoke(app, ["train", "--resume", "--out", str(out), "--epochs", "3"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {out}/{message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert snapshot(out) == before


def test_resume_changes_nothing_until_the_model_loads(runner, one_epoch, tmp_path):
    out = copy_of(one_epoch, tmp_path)
    (out / "model.keras").write_bytes((out / "model.keras").read_bytes()[:500])
    before = snapshot(out)
    result = runner.invoke(app, ["train", "--resume", "--out", str(out), "--epochs", "3"])
    assert result.exit_code == 1 and "cannot load the model" in result.stderr
    assert snapshot(out) == before  # metrics.json and config.json untouched


def test_a_failed_run_removes_only_what_it_wrote(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("mine/logs").mkdir(parents=True)
    Path("mine/logs/notes.txt").write_text("mine")
    args = ["train", "--optimizer", "sgd", "--lr", "1e30", "--arch", "cross", "--out", "mine"]
    result = runner.invoke(app, [*args, "--epochs", "1", "--force"])
    assert result.exit_code == 1 and "training diverged" in result.stderr
    assert sorted(str(p) for p in Path("mine").rglob("*")) == ["mine/logs", "mine/logs/notes.txt"]


KILLER = """
import os, signal, sys
from dcn_cli.train import hooks

hooks.SAVE_EVERY_SECONDS = 0  # a save after every epoch
nth, seen, real = int(sys.argv[1]), [], os.replace

def replace(src, dst):
    if os.path.basename(dst) == "model.keras":
        seen.append(dst)
        if len(seen) == nth:
            os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is whole, not yet renamed
    real(src, dst)

os.replace = replace
sys.argv = ["dcn", *sys.argv[2:]]
from dcn_cli.commands import app
app()
"""


def test_a_run_stopped_before_its_first_save_starts_afresh(runner, whole, tmp_path):
    """What kill -9 before the first save leaves (config.json lands first; the model's
    temporary file, if any, is removed as a leftover: test_trust.py): --resume trains
    the run from its start, with its saved settings."""
    out = tmp_path / "ckpt"
    out.mkdir()
    shutil.copy(whole / "config.json", out / "config.json")
    result = runner.invoke(app, ["train", "--resume", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "no model was saved yet; starting the run afresh" in result.stderr
    assert_same_checkpoints(out, whole)


@pytest.mark.slow  # processes of their own, 10-25 s: .ci/run runs -m slow too
def test_kill_9_inside_a_save_then_resume_finishes_the_run(runner, data, whole, tmp_path):
    """SIGKILL inside the third save, its temporary file whole but not yet renamed."""
    out = tmp_path / "ckpt"
    command = ["train", "--data", str(data), "--out", str(out), "--epochs", "4", *RUN]
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "3", *command], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # What was saved loads, and describes the config; the interrupted save left a
    # temporary file behind. history.csv, saved just before the model, is one epoch
    # ahead of it: --resume goes by the model's own step count.
    assert len(weights(out)) > 0
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 2 + 1
    assert list(out.glob(".model.keras.*"))

    result = runner.invoke(app, ["train", "--resume", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not list(out.glob(".*"))  # no temporary file outlives the run
    assert_same_checkpoints(out, whole)


def test_sigterm_before_the_first_save_leaves_only_what_was_there(
    runner, data, tmp_path, monkeypatch
):
    """SIGTERM (what a scheduler sends) arrives just as the first save would start: the
    command stops with exit code 143 and removes what it wrote, and only that."""
    import signal

    from dcn_cli.model import checkpoint

    def save_model(model, directory):
        os.kill(os.getpid(), signal.SIGTERM)  # to this process: dcn's handler takes it

    monkeypatch.setattr(checkpoint, "save_model", save_model)
    previous = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "mine"
    (out / "logs" / "train").mkdir(parents=True)
    (out / "logs" / "train" / "notes.txt").write_text("mine")
    command = ["train", "--data", str(data), "--out", str(out), "--epochs", "2", *RUN]
    try:
        result = runner.invoke(app, command)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 143, result.output
    assert result.stderr.strip().splitlines()[-1] == "Interrupted."
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "logs",
        "logs/train",
        "logs/train/notes.txt",
    ]


V030 = Path(__file__).parent / "data" / "dcn-0.3.0"


@pytest.mark.parametrize("name", ["stacked", "low-rank-parallel", "v1", "mix"])
def test_a_checkpoint_of_dcn_0_3_0_loads_and_predicts_the_same(runner, tmp_path, name):
    """Keras' registered names are part of the file format: what 0.3.0 wrote still loads,
    predicts its numbers and evaluates; the mixture, which has the most of dcn's own
    layers, also trains on (its optimizer reloaded)."""
    import csv

    shutil.copytree(V030, tmp_path / "v030")  # commands write beside a checkpoint
    ckpt, data = tmp_path / "v030" / name, str(tmp_path / "v030" / "clicks.csv")
    result = runner.invoke(app, ["predict", str(ckpt), "--data", data])
    assert result.exit_code == 0, result.output
    got = [float(r["prediction"]) for r in csv.DictReader(result.stdout.splitlines())]
    with open(ckpt / "predictions.csv") as handle:
        want = [float(r["prediction"]) for r in csv.DictReader(handle)]
    np.testing.assert_allclose(got, want, atol=1e-6)
    result = runner.invoke(app, ["evaluate", str(ckpt), "--json"])  # finds its data beside it
    assert result.exit_code == 0, result.output
    if name != "mix":  # one resume, of the model with the most of dcn's own layers
        return
    (ckpt / "metrics.json").unlink()
    result = runner.invoke(app, ["train", "--resume", "--out", str(ckpt), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert len((ckpt / "history.csv").read_text().splitlines()) == 4  # header and 3 epochs
