"""Which ``tf.distribute`` strategy a run trains under, and what its workers share.

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
:mod:`dcn_cli.train.launcher` starts such a cluster on one machine.
"""

from __future__ import annotations

import contextlib
import json
import os

from dcn_cli.errors import DcnError
from dcn_cli.settings import check


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

    check("distribute", name, "--distribute")
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
