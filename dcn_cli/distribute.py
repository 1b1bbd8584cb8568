"""Which ``tf.distribute`` strategy a run trains under, and the local cluster launcher.

``--distribute auto`` (the default) picks:

- ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a cluster of more
  than one task. That is how Kubeflow's TFJob, Vertex AI and SageMaker start
  workers: every worker runs the same ``dcn train ...`` command, and the
  first worker (task 0, or the ``chief`` task) writes the checkpoint.
- ``MirroredStrategy`` over the local GPUs when there are several;
- one device otherwise.

``off`` trains on one device whatever the machine has; ``mirrored`` and
``multi-worker`` force those strategies (``mirrored`` uses every local GPU, or
every logical CPU device when there is no GPU). dcn writes no networking of
its own: TensorFlow's collective ops carry the all-reduce.

:func:`launch` starts N workers on this machine with ``TF_CONFIG`` set
(``dcn train --workers N``), which is how a laptop tries the cluster path.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque

from dcn_cli.errors import DcnError

STRATEGIES = ("auto", "off", "mirrored", "multi-worker")
STOP_SECONDS = 10.0  # how long a worker gets to stop after SIGTERM before SIGKILL


def _cluster() -> dict | None:
    """TF_CONFIG's contents, when it names a cluster of more than one task.

    A TF_CONFIG that is not a cluster description, or whose own task is not in
    its cluster, is an error, whatever the cluster's size.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    shape = (
        'a cluster description like {"cluster": {"worker": ["host:port", ...]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        tasks = sum(len(addresses) for addresses in cluster.values())
        kind, index = task["type"], task["index"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DcnError(f"TF_CONFIG is not {shape}") from None
    if kind not in cluster or not isinstance(cluster[kind], list):
        raise DcnError(f"TF_CONFIG: its task type {kind!r} is not in its cluster")
    if isinstance(index, bool) or not isinstance(index, int):
        raise DcnError(f"TF_CONFIG: the task index must be an integer, got {index!r}")
    if not 0 <= index < len(cluster[kind]):
        raise DcnError(
            f"TF_CONFIG: task index {index} is outside its cluster's "
            f"{len(cluster[kind])} {kind} address(es)"
        )
    return config if tasks > 1 else None


def make_strategy(name: str = "auto"):
    """The strategy ``--distribute name`` asks for; create it before any model."""
    import tensorflow as tf

    from dcn_cli.backend import quiet_stderr

    if name not in STRATEGIES:
        raise DcnError(f"unknown --distribute {name!r}; expected one of: {', '.join(STRATEGIES)}")
    cluster = _cluster()
    if name == "multi-worker" or (name == "auto" and cluster):
        if cluster is None:
            raise DcnError(
                "--distribute multi-worker needs TF_CONFIG to describe the cluster "
                "(or use --workers N to start N local workers)"
            )
        try:
            # Quietly: a port already taken makes gRPC log C++ lines before the error.
            with quiet_stderr():
                return tf.distribute.MultiWorkerMirroredStrategy()
        except ValueError as err:  # a cluster TensorFlow cannot use
            raise DcnError(f"TF_CONFIG: {err}") from None
        except tf.errors.OpError as err:
            task = cluster["task"]
            address = cluster["cluster"][task["type"]][task["index"]]
            raise DcnError(
                f"{task['type']} {task['index']}: could not start its TensorFlow server on "
                f"{address} ({err.message.splitlines()[0]}; is the port taken?)"
            ) from None
    if cluster is not None and name in ("off", "mirrored"):
        raise DcnError(
            f"TF_CONFIG describes a cluster, and --distribute {name} would train every worker "
            "alone, each writing --out; use --distribute auto (or unset TF_CONFIG)"
        )
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: always, except on a cluster's other workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def cluster_shape(strategy) -> dict[str, int]:
    """The workers feeding ``strategy`` (one, or a cluster's count) and its replicas.

    A streamed epoch's steps depend on both, so a streamed run resumes only
    on the same shape.
    """
    workers = int(getattr(strategy.extended, "_num_workers", 1) or 1)
    return {"workers": workers, "replicas": int(strategy.num_replicas_in_sync)}


def worker_name(strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return "this process"
    return f"{resolver.task_type} {resolver.task_id}"


def barrier(strategy) -> None:
    """Wait until every worker of a cluster gets here (a no-op elsewhere).

    A worker that exits while the chief still tests and saves the model can
    make TensorFlow's coordination service report an error on the chief.
    """
    if _cluster() is None or not hasattr(strategy, "cluster_resolver"):
        return
    import tensorflow as tf

    @tf.function
    def meet():
        return strategy.reduce("sum", strategy.run(lambda: tf.constant(1.0)), axis=None)

    meet()


@contextlib.contextmanager
def lost_workers(strategy):
    """Turn a collective op aborted by a dead or unreachable peer into one clear error.

    TensorFlow checks a cluster's workers every 30 s or so and aborts the
    collectives when one stops answering, so a worker never waits forever.
    """
    import tensorflow as tf

    try:
        yield
    except (
        tf.errors.UnavailableError,
        tf.errors.CancelledError,
        tf.errors.AbortedError,
        tf.errors.DeadlineExceededError,
        tf.errors.InternalError,
    ) as err:
        if is_chief(strategy) and _cluster() is None:
            raise
        first = err.message.strip().splitlines()[0] if err.message else type(err).__name__
        raise DcnError(
            f"{worker_name(strategy)}: lost another worker of the cluster ({first}); "
            "the checkpoint keeps its last save: run the same command with --resume"
        ) from None


# ------------------------------------------------------------------- launcher


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on localhost now (another program may take one later)."""
    sockets, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def without_workers_option(argv: list[str]) -> list[str]:
    """The command line ``argv`` minus its ``--workers N`` (or ``--workers=N``)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    return kept


def launch(n: int, argv: list[str], ports: list[int] | None = None) -> int:
    """Run ``dcn`` with ``argv`` as ``n`` local workers of one cluster; return one exit code.

    Worker 0 (the chief) prints as it would alone: its stdout is this
    process's, its progress reaches this stderr. When any worker fails, the
    others are stopped (SIGTERM, then SIGKILL after 10 s: a worker blocked in
    a collective never gets back to Python to handle SIGTERM) and one line
    names it, with the error it printed. Ctrl-C or SIGTERM stops them all.
    """
    if n < 1:
        raise DcnError(f"--workers must be at least 1, got {n}")
    ports = ports or free_ports(n)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers: list[subprocess.Popen] = []
    tails: list[deque[str]] = []
    threads: list[threading.Thread] = []
    relay = threading.Event()
    relay.set()
    try:
        for index in range(n):
            task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TF_CONFIG": json.dumps(task)}
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's own log lines
            if index == 0 and sys.stderr.isatty():
                env.setdefault("TTY_COMPATIBLE", "1")  # rich: draw the bar through the pipe
            worker = subprocess.Popen(
                [sys.executable, "-m", "dcn_cli", *argv],
                env=env,
                stdout=None if index == 0 else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            workers.append(worker)
            tails.append(deque(maxlen=20))
            thread = threading.Thread(
                target=_read_stderr,
                args=(worker, tails[-1], relay if index == 0 else None),
                daemon=True,
            )
            thread.start()
            threads.append(thread)
        failed = _wait(workers)
        if failed is not None:
            relay.clear()  # what the stopped chief prints now is noise
        _stop(workers)
        for thread in threads:
            thread.join(timeout=5)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM as the CLI raises it
        _stop(workers)  # the chief's last epoch lines still come through
        for thread in threads:
            thread.join(timeout=5)
        print("Interrupted.", file=sys.stderr, flush=True)
        return 143 if type(err).__name__ == "_Terminated" else 130
    finally:
        _stop(workers, grace=0)  # whatever went wrong above, no worker outlives this
    if failed is None:
        return 0
    index, code = failed
    print(f"Error: worker {index}: {_reason(index, code, tails[index])}", file=sys.stderr)
    return 1


def _reason(index: int, code: int, tail: deque) -> str:
    said = [line for line in tail if line.startswith("Error: ")]
    if said:
        return said[-1].removeprefix("Error: ").removeprefix(f"worker {index}: ")
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code in (130, 143):
        return "interrupted" + (" (SIGTERM)" if code == 143 else " (Ctrl-C)")
    return f"exited with code {code}" + (f": {tail[-1]}" if tail else "")


def _read_stderr(worker: subprocess.Popen, tail: deque, relay: threading.Event | None) -> None:
    """Keep the last lines of a worker's stderr; pass the chief's on to ours as it comes.

    Read in chunks, not lines: a progress bar redraws its line without ending
    it. Lines starting with ``Error:`` are held back: the launcher says it once.
    """
    assert worker.stderr is not None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    while chunk := os.read(worker.stderr.fileno(), 65536):
        *lines, pending = (pending + decoder.decode(chunk)).split("\n")
        tail.extend(line.split("\r")[-1] for line in lines)
        if relay is not None and relay.is_set():
            shown = "".join(f"{line}\n" for line in lines if not _held(line))
            if not _held(pending) and not "Interrupted.".startswith(pending):
                shown, pending = shown + pending, ""
            sys.stderr.write(shown)
            sys.stderr.flush()
    if pending:
        tail.append(pending.split("\r")[-1])


def _held(line: str) -> bool:
    """The chief's lines the launcher says itself, once: its error, its interruption."""
    return line.startswith("Error: ") or line.strip() == "Interrupted."


def _wait(workers: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Wait until all workers succeed (None) or one fails: (its index, its exit code)."""
    while True:
        codes = [w.poll() for w in workers]
        for index, code in enumerate(codes):
            if code is not None and code != 0:
                return index, code
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.1)


def _stop(workers: list[subprocess.Popen], grace: float = STOP_SECONDS) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate() if grace else worker.kill()
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
