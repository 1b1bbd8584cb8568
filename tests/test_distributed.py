"""``dcn train`` on a cluster: ``--workers N`` on localhost, as a user runs it.

Each test starts real worker processes (``python -m dcn_cli``), which talk
through TensorFlow's collective ops over localhost ports.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from helpers import assert_same_weights

from dcn_cli.model import checkpoint
from dcn_cli.train import launcher

# A stacked DCN on categorical and numerical features. No dropout: each replica
# would draw its own masks.
FAST = ["--data", "sample_data/ctr", "--deep-layers", "16,16", "--dropout", "0"]
FAST += ["--embedding-l2", "0.001", "--batch-size", "256", "--lr", "0.01"]
EPOCHS = "6"  # of the killed run: enough to be still training at the kill, few to resume


@pytest.fixture(autouse=True)
def _in_samples(samples, monkeypatch):
    """Each test runs where sample_data/ is a copy: FAST's relative path reads it, and
    the workers (started with this working directory) write their cache there."""
    monkeypatch.chdir(samples)


def dcn(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dcn_cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _weights(ckpt: Path) -> list[np.ndarray]:
    return [w.numpy() for w in checkpoint.load_model(ckpt).weights]


@pytest.mark.parametrize(
    "task, optimizer", [("binary", "adagrad"), ("regression", "adam")], ids=["binary", "regr"]
)
def test_two_workers_train_as_one_process(tmp_path, task, optimizer):
    args = [*FAST, "--task", task, "--optimizer", optimizer, "--epochs", "2", "--json"]
    two = dcn("train", *args, "--workers", "2", "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    one = dcn("train", *args, "--distribute", "off", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr

    assert_same_weights(_weights(tmp_path / "two"), _weights(tmp_path / "one"))
    assert '"test_rows"' in two.stdout  # the chief's metrics, once
    assert two.stdout.count('"test_rows"') == 1
    # Only the chief wrote, and nothing beyond a run's files.
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == ["config.json", "history.csv", "logs", "metrics.json", "model.keras"]


def test_a_killed_worker_ends_the_job_and_resume_finishes(tmp_path):
    """Killed after the chief's first save (epoch 1): it must still be training then.
    An epoch here takes about 3 s, and the kill follows the save within 0.2 s."""
    out = tmp_path / "run"
    job = subprocess.Popen(
        [sys.executable, "-m", "dcn_cli", "train", *FAST, "--epochs", EPOCHS]
        + ["--workers", "2", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / checkpoint.MODEL).exists():  # the chief saved once
            assert job.poll() is None, job.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint was saved"
            time.sleep(0.2)
        worker = next(
            p
            for p in psutil.Process(job.pid).children()
            if '"index": 1' in p.environ().get("TF_CONFIG", "")
        )
        killed = time.monotonic()
        os.kill(worker.pid, signal.SIGKILL)
        _, stderr = job.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 1
    assert stderr.strip().splitlines()[-1] == "Error: worker 1: killed by SIGKILL"
    assert took < launcher.STOP_SECONDS + 15
    # Every worker is gone, and the checkpoint still loads.
    assert not any(p.is_running() for p in psutil.Process().children(recursive=True))
    assert int(checkpoint.load_model(out).optimizer.iterations.numpy()) > 0  # a trained save
    done = len(checkpoint.read_history(out))
    assert done < int(EPOCHS)

    resumed = dcn("train", "--resume", "--out", str(out), "--workers", "2", "--json")
    assert resumed.returncode == 0, resumed.stderr
    history = checkpoint.read_history(out)
    assert [row["epoch"] for row in history] == list(range(1, int(EPOCHS) + 1))


def test_without_the_launcher_a_dead_worker_ends_the_others(tmp_path):
    """A real cluster: TF_CONFIG set by hand, no --workers to stop the survivors."""
    ports = launcher.free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    out = tmp_path / "run"
    workers = []
    for index in range(2):
        task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "dcn_cli", "train", *FAST, "--epochs", "500"]
                + ["--out", str(out)],
                env={**os.environ, "TF_CONFIG": json.dumps(task)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.monotonic() + 240
        while not (out / checkpoint.MODEL).exists():
            assert all(w.poll() is None for w in workers), workers[0].stderr.read()
            assert time.monotonic() < deadline, "no checkpoint was saved"
            time.sleep(0.2)
        workers[1].kill()
        killed = time.monotonic()
        _, stderr = workers[0].communicate(timeout=180)
        took = time.monotonic() - killed
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    print(f"the surviving worker stopped {took:.1f} s after the kill")
    assert workers[0].returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: worker 0: lost another worker of the cluster"), stderr[-3000:]
    assert took < 120
    assert int(checkpoint.load_model(out).optimizer.iterations.numpy()) > 0  # a trained save


def test_a_taken_port_ends_the_job_naming_the_worker(tmp_path, capfd):
    import socket

    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        # The chief's: what it writes to stderr reaches the user's.
        ports = [taken.getsockname()[1], launcher.free_ports(1)[0]]
        argv = ["train", *FAST, "--epochs", "1", "--out", str(tmp_path / "run")]
        start = time.monotonic()
        code = launcher.launch(2, argv, ports=ports)
    assert code == 1
    assert time.monotonic() - start < 120
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # no gRPC log lines before it
    assert lines[0].startswith(
        f"Error: worker 0: could not start its TensorFlow server on localhost:{ports[0]}"
    )
    assert not (tmp_path / "run" / checkpoint.MODEL).exists()


@pytest.mark.parametrize(
    "argv, kept",
    [
        (["train", "--workers", "2", "--epochs", "1"], ["train", "--epochs", "1"]),
        (["train", "--workers=3", "--out", "x"], ["train", "--out", "x"]),
    ],
)
def test_the_launcher_passes_the_command_line_on(argv, kept):
    assert launcher.without_workers_option(argv) == kept


def test_multi_worker_without_a_cluster_is_an_error(runner, tmp_path, monkeypatch):
    from dcn_cli.commands import app

    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = runner.invoke(
        app, ["train", "--distribute", "multi-worker", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --distribute multi-worker needs TF_CONFIG")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("not json", "TF_CONFIG is not a cluster description"),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 5}}',
            "TF_CONFIG: task index 5 is outside its cluster's 2 worker address(es)",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
            "TF_CONFIG: task index 3 is outside its cluster's 1 worker address(es)",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "ps", "index": 0}}',
            "TF_CONFIG: its task type 'ps' is not in its cluster",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "x"}}',
            "TF_CONFIG: the task index must be an integer, got 'x'",
        ),
    ],
)
def test_a_wrong_tf_config_is_one_error_line(runner, tmp_path, monkeypatch, tf_config, message):
    from dcn_cli.commands import app

    monkeypatch.setenv("TF_CONFIG", tf_config)
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--epochs", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "x").exists()
