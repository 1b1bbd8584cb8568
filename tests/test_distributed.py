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
from helpers import assert_same_weights, clicks

from dcn_cli.commands import app
from dcn_cli.model import checkpoint
from dcn_cli.train import distribute, launcher

# A stacked DCN on categorical and numerical features. No dropout: each replica
# would draw its own masks.
FAST = ["--data", "clicks", "--deep-layers", "16,16", "--dropout", "0"]
FAST += ["--embedding-l2", "0.001", "--batch-size", "256", "--lr", "0.01", "--patience", "0"]
EPOCHS = "6"  # of the killed run: enough to be still training at the kill, few to resume


@pytest.fixture(scope="module")
def _clicks(tmp_path_factory):
    return clicks(tmp_path_factory.mktemp("distributed") / "clicks", rows=4000)


@pytest.fixture(autouse=True)
def _beside_the_data(_clicks, monkeypatch):
    """Each test runs where FAST's relative path finds the data: the workers, started
    with this working directory, read it (and write their cache) there."""
    monkeypatch.chdir(_clicks.parent)


def dcn(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dcn_cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _weights(ckpt: Path) -> list[np.ndarray]:
    return [w.numpy() for w in checkpoint.load_model(ckpt).weights]


@pytest.mark.slow  # processes of their own, 10-25 s: .ci/run runs -m slow too
def test_two_workers_train_as_one_process(runner, tmp_path):
    """Binary clicks with Adam, dcn's defaults: sparse embedding gradients summed across
    workers (the mirrored tests in test_engine.py cover Adagrad and in-process replicas)."""
    args = [*FAST, "--optimizer", "adam", "--epochs", "2", "--json"]
    two = dcn("train", *args, "--workers", "2", "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    one = runner.invoke(
        app, ["train", *args, "--distribute", "off", "--out", str(tmp_path / "one")]
    )
    assert one.exit_code == 0, one.output

    assert_same_weights(_weights(tmp_path / "two"), _weights(tmp_path / "one"))
    assert '"test_rows"' in two.stdout  # the chief's metrics, once
    assert two.stdout.count('"test_rows"') == 1
    # Only the chief wrote, and nothing beyond a run's files.
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == ["config.json", "history.csv", "logs", "metrics.json", "model.keras"]


GRACE = 2.0
# dcn, whose launcher gives a worker GRACE seconds (not 10) to stop before SIGKILL: the
# chief may be blocked in a collective with the dead worker, where SIGTERM waits.
SHORT_GRACE = f"""
import sys
from dcn_cli.train import launcher
launcher.STOP_SECONDS = {GRACE}
from dcn_cli.commands import app
sys.argv = ["dcn", *sys.argv[1:]]
app()
"""


@pytest.mark.slow  # processes of their own, 10-25 s: .ci/run runs -m slow too
def test_a_killed_worker_ends_the_job_and_resume_finishes(runner, tmp_path):
    """Killed after the chief's first save (epoch 1): it must still be training then.
    An epoch here takes about 0.5 s, and the kill follows the save within 0.2 s."""
    out = tmp_path / "run"
    job = subprocess.Popen(
        [sys.executable, "-c", SHORT_GRACE, "train", *FAST, "--epochs", EPOCHS]
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
    assert took < GRACE + 15
    # Every worker is gone, and the checkpoint still loads.
    assert not any(p.is_running() for p in psutil.Process().children(recursive=True))
    assert int(checkpoint.load_model(out).optimizer.iterations.numpy()) > 0  # a trained save
    done = len(checkpoint.read_history(out))
    assert done < int(EPOCHS)

    # Resumed on two replicas in this process (as the two workers' global batches: the
    # data is held in memory, so the run may change its cluster's shape).
    resume = ["train", "--resume", "--out", str(out), "--distribute", "mirrored", "--json"]
    resumed = runner.invoke(app, resume)
    assert resumed.exit_code == 0, resumed.output
    history = checkpoint.read_history(out)
    assert [row["epoch"] for row in history] == list(range(1, int(EPOCHS) + 1))


def test_a_lost_worker_is_one_error_naming_this_worker():
    """What a worker of a cluster says when TensorFlow aborts a collective because a peer
    died (the slow test below kills one for real and waits for TensorFlow to notice)."""
    from types import SimpleNamespace

    import tensorflow as tf

    from dcn_cli.errors import DcnError

    resolver = SimpleNamespace(
        task_type="worker",
        task_id=1,
        cluster_spec=lambda: tf.train.ClusterSpec({"worker": ["a:1", "b:2"]}),
    )
    aborted = tf.errors.UnavailableError(None, None, "Socket closed\nmore detail")
    with pytest.raises(DcnError) as caught:
        with distribute.lost_workers(SimpleNamespace(cluster_resolver=resolver)):
            raise aborted
    assert str(caught.value) == (
        "worker 1: lost another worker of the cluster (Socket closed); "
        "the checkpoint keeps its last save: run the same command with --resume"
    )
    # One process, no cluster: the error is TensorFlow's own, not a lost worker.
    with pytest.raises(tf.errors.UnavailableError):
        with distribute.lost_workers(tf.distribute.get_strategy()):
            raise aborted


@pytest.mark.slow  # TensorFlow takes 10-30 s to notice the dead worker
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


@pytest.mark.slow  # processes of their own, 10-25 s: .ci/run runs -m slow too
def test_a_taken_port_is_one_error_line_naming_the_worker(tmp_path):
    """The chief of a two-worker cluster finds its port taken: one line, no gRPC log lines
    before it. (The launcher relays the chief's stderr and stops the others when one
    fails: test_a_killed_worker_ends_the_job_and_resume_finishes.)"""
    import socket

    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        ports = [taken.getsockname()[1], launcher.free_ports(1)[0]]
        cluster = {"worker": [f"localhost:{port}" for port in ports]}
        task = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
        done = subprocess.run(
            [sys.executable, "-m", "dcn_cli", "train", *FAST, "--out", str(tmp_path / "run")],
            env={**os.environ, "TF_CONFIG": json.dumps(task)},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"Error: worker 0: could not start its TensorFlow server on localhost:{ports[0]}"
    )
    assert not (tmp_path / "run").exists()


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
    monkeypatch.setenv("TF_CONFIG", tf_config)
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--epochs", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "x").exists()
