"""``dcn train --workers N``: N local workers of one cluster, started and watched.

:func:`launch` runs the same command line N times with ``TF_CONFIG`` set to a
cluster on localhost, which is how a laptop tries the cluster path that
Kubeflow, Vertex AI or SageMaker take. Worker 0 speaks for the cluster; when
any worker fails the others are stopped, and one line says which and why.
"""

from __future__ import annotations

import codecs
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

STOP_SECONDS = 10.0  # how long a worker gets to stop after SIGTERM before SIGKILL


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


def _stop(workers: list[subprocess.Popen], grace: float | None = None) -> None:
    """SIGTERM to every worker still running, SIGKILL to those that outlast ``grace``
    seconds (default :data:`STOP_SECONDS`); ``grace=0`` kills at once."""
    grace = STOP_SECONDS if grace is None else grace
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
