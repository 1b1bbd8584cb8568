"""What distributed training costs: all-reduce bytes, local workers, and a Criteo 1TB projection.

    python benchmarks/distributed.py --ml100k DIR [--only bytes,workers,projection]

- bytes: what each replica hands to the all-reduce per step, measured on the
  engine's traced step under ``MirroredStrategy`` over two logical CPU
  devices: the dense gradients, and the embedding gradients as the sparse
  rows the batch touched (``IndexedSlices``: values and int64 indices).
  Beside it, what whole dense tables would have cost. For the tutorial's
  MovieLens model (batch 8192) and a Criteo-shaped one (``dcn generate ctr``
  schema, 26 categorical and 13 numerical features, embedding 16, batch 4096).
- workers: ``dcn train`` on MovieLens 100K under the tutorial's protocol
  (stacked DCN, Adam 0.01, batch 8192, 8 epochs), seeds 0-2, as one process
  (``--distribute off``) and as ``--workers 2``: test RMSE and training rows
  per second.
- projection: an epoch of Criteo 1TB (4.4 billion rows) on N workers, on
  paper, from the Criteo-shaped model's measured step time here and its
  measured all-reduce bytes, with the assumptions printed beside it.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CRITEO_ROWS = 4.4e9


def _split_cpu() -> None:
    """Two logical CPU devices, before TensorFlow starts: MirroredStrategy's two replicas."""
    from dcn_cli import backend

    backend.load()
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


@functools.cache
def _mirrored():
    """One MirroredStrategy for the process: a second one would reuse the first one's
    collective keys, and TensorFlow would mix up their shapes."""
    import tensorflow as tf

    devices = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])


def _engine(
    data: str, model: dict, batch: int, strategy=None, hash_all: int | None = None, optimizer="adam"
):
    import tensorflow as tf

    from dcn_cli.data.prepare import DataOptions, prepare
    from dcn_cli.data.sources import open_table
    from dcn_cli.model.config import ModelConfig
    from dcn_cli.model.factory import build_model
    from dcn_cli.model.optimizers import make as make_optimizer
    from dcn_cli.train.engine import Engine, compile_model

    table = open_table(data)
    options = DataOptions()
    if hash_all:
        options.hash_buckets = {
            c.name: hash_all for c in table.schema.features if c.role == "categorical"
        }
    prepared = prepare(table, options)
    config = ModelConfig(features=prepared.features, task=prepared.task, **model)
    with (strategy or tf.distribute.get_strategy()).scope():
        built = build_model(config)
        compile_model(built, config.task, make_optimizer(optimizer, 0.01))
    return Engine(built, config, prepared, batch, strategy), config


def measure_bytes(
    data: str, model: dict, batch: int, hash_all: int | None = None, optimizer: str = "adam"
) -> dict:
    """Bytes one replica hands to the all-reduce per step, read from the traced step."""
    import tensorflow as tf

    # (kind, bytes sent, or per row of the batch when sparse, bytes if dense)
    seen: list[tuple[str, int, int]] = []
    original = tf.distribute.ReplicaContext.all_reduce

    def counting(self, reduce_op, value, options=None):
        if isinstance(value, list) and not seen:  # the gradients, first replica's trace
            for grad in value:
                if isinstance(grad, tf.IndexedSlices):
                    # One row per example of the batch (not static in the trace):
                    # the row's values and its int64 index.
                    per_row = int(np.prod(grad.values.shape[1:])) * 4 + 8
                    seen.append(("sparse", per_row, 0))
                else:
                    seen.append(("dense", int(np.prod(grad.shape)) * 4, 0))

        return original(self, reduce_op, value, options)

    strategy = _mirrored()
    tf.distribute.ReplicaContext.all_reduce = counting
    try:
        engine, config = _engine(data, model, batch, strategy, hash_all, optimizer)
        engine.fit(1, seed=0)
    finally:
        tf.distribute.ReplicaContext.all_reduce = original
    variables = engine.trainee.trainable_variables
    tables = [int(np.prod(v.shape)) * 4 for v in variables if "embed" in v.path]
    sparse = [s for s in seen if s[0] == "sparse"]
    dense = [s for s in seen if s[0] == "dense"]
    return {
        "tables": len(tables),
        "replicas": engine.replicas,
        "per_replica_batch": engine.per_replica,
        "dense_tensors": len(dense),
        "dense_bytes": sum(s[1] for s in dense),
        "sparse_tensors": len(sparse),
        "sparse_bytes": sum(s[1] for s in sparse) * engine.per_replica,
        "tables_if_dense_bytes": sum(tables),
        "other_bytes": sum(int(np.prod(v.shape)) * 4 for v in variables if "embed" not in v.path),
        "flops_per_example": _flops(config),
    }


def _flops(config) -> int:
    from dcn_cli.model.factory import forward_flops

    return forward_flops(config)


def step_seconds(data: str, model: dict, batch: int, hash_all: int, repeats: int = 3) -> float:
    """Median seconds per training step on one device (Adagrad), after the first (tracing) epoch."""
    engine, _ = _engine(data, model, batch, hash_all=hash_all, optimizer="adagrad")
    engine.fit(1, seed=0)
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        engine.fit(1, seed=seed)
        times.append((time.perf_counter() - start) / engine.steps_per_epoch())
    return float(np.median(times))


MOVIELENS_MODEL = {
    "arch": "stacked",
    "deep_layers": [192, 192],
    "dropout": 0.0,
    "embedding_l2": 0.0,
}
CTR_NAME = "ctr, DCN emb 16, L2 3e-3 (Adagrad), 1M buckets per feature"
CTR_MODEL = {
    "arch": "stacked",
    "deep_layers": [192, 192],
    "dropout": 0.0,
    "embedding_dim": 16,
    "embedding_l2": 0.003,  # dcn's default: an L2 term over whole tables, still sent sparse
}


def bytes_section(ml100k: str, ctr: str) -> dict:
    print("\n### All-reduce bytes per step, per replica (2 replicas)\n")
    print(
        "| model | per-replica batch | sent dense | sent sparse (rows of a batch) "
        "| every table dense | sent / every table dense |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    out = {}
    for name, data, model, batch, hashed, optimizer in (
        ("MovieLens, tutorial DCN (Adam)", ml100k, MOVIELENS_MODEL, 8192, None, "adam"),
        (CTR_NAME, ctr, CTR_MODEL, 4096, 1_000_000, "adagrad"),
    ):
        result = measure_bytes(data, model, batch, hashed, optimizer)
        sent = result["dense_bytes"] + result["sparse_bytes"]
        densified = result["other_bytes"] + result["tables_if_dense_bytes"]
        whole = result["tables"] - result["sparse_tensors"]
        print(
            f"| {name} | {result['per_replica_batch']:,} | {result['dense_bytes'] / 1e6:.2f} MB "
            f"({whole} of {result['tables']} tables whole) "
            f"| {result['sparse_bytes'] / 1e6:.2f} MB ({result['sparse_tensors']} tables) "
            f"| {densified / 1e6:.1f} MB | {sent / densified:.3f} |"
        )
        out[name] = result
    return out


def workers_section(ml100k: str) -> None:
    print("\n### MovieLens 100K, tutorial protocol: one process against `--workers 2`\n")
    print("| run | seed | test RMSE | train s | training rows/s |")
    print("| --- | --- | --- | --- | --- |")
    args = ["--data", ml100k, "--epochs", "8", "--batch-size", "8192", "--lr", "0.01"]
    args += ["--dropout", "0", "--embedding-l2", "0", "--json"]
    summary: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(3):
            for label, extra in (
                ("one process", ["--distribute", "off"]),
                ("2 workers", ["--workers", "2"]),
            ):
                out = Path(tmp) / f"{label.replace(' ', '-')}-{seed}"
                command = [sys.executable, "-m", "dcn_cli", "train", *args, "--seed", str(seed)]
                done = subprocess.run(
                    [*command, *extra, "--out", str(out)], capture_output=True, text=True, cwd=ROOT
                )
                if done.returncode != 0:
                    sys.exit(done.stderr[-2000:])
                metrics = json.loads(done.stdout)
                rate = metrics["epochs_run"] * 80_253 / metrics["train_seconds"]
                summary.setdefault(label, []).append(metrics["rmse"])
                summary.setdefault(label + " rate", []).append(rate)
                print(
                    f"| {label} | {seed} | {metrics['rmse']:.4f} | {metrics['train_seconds']:.1f} "
                    f"| {rate:,.0f} |"
                )
    for label in ("one process", "2 workers"):
        values = summary[label]
        print(
            f"\n{label}: RMSE {np.mean(values):.4f} ± {np.std(values):.4f}, "
            f"median {np.median(summary[label + ' rate']):,.0f} rows/s"
        )


def projection_section(ctr: str, measured: dict | None) -> None:
    if measured is None:
        measured = {CTR_NAME: measure_bytes(ctr, CTR_MODEL, 4096, 1_000_000, "adagrad")}
    result = measured[CTR_NAME]
    batch = 4096
    with_l2 = step_seconds(ctr, CTR_MODEL, batch, 1_000_000)
    seconds = step_seconds(ctr, {**CTR_MODEL, "embedding_l2": 0.0}, batch, 1_000_000)
    flops = 3 * result["flops_per_example"] * batch
    print("\n### Criteo 1TB (4.4 billion rows), one epoch on N workers: a projection\n")
    print(
        f"The L2 term over whole tables makes every step update every row of the 26 "
        f"tables (416M weights): {with_l2 * 1e3:.0f} ms per step here with "
        f"--embedding-l2 0.003, against {seconds * 1e3:.0f} ms without. The projection "
        "takes the model without it.\n"
    )
    print(
        f"Measured here (one CPU process, 2 cores): {seconds * 1e3:.1f} ms per step of "
        f"{batch:,} rows "
        f"({batch / seconds:,.0f} rows/s; {flops / seconds / 1e9:.1f} GFLOP/s of model matmuls). "
        f"All-reduce payload per replica per step: {result['dense_bytes'] / 1e6:.2f} MB dense + "
        f"{result['sparse_bytes'] / 1e6:.2f} MB sparse rows "
        f"(per-replica batch {result['per_replica_batch']:,}).\n"
    )
    print(
        "Assumptions: each GPU worker runs this model's step "
        "`speedup` times faster than this CPU process (stated per row, not measured: TensorFlow "
        "is not installed on the GPU machine this project can borrow); dense gradients go "
        "by ring all-reduce (each worker sends 2(N-1)/N of them); sparse rows by all-gather "
        "(each worker receives the other N-1 workers' rows); 12.5 GB/s per worker "
        "(100 Gb/s Ethernet or InfiniBand); no overlap of compute and communication; "
        "the global batch grows with N (per-worker batch stays 4,096).\n"
    )
    # Per worker, at 4,096 rows a worker: the dense gradients are the model's size,
    # the sparse rows grow with the rows (measured at 2,048 rows a replica).
    dense = result["dense_bytes"]
    sparse = result["sparse_bytes"] * batch // result["per_replica_batch"]
    print("| workers N | GPU speedup per worker | compute s/step | comm s/step | epoch hours |")
    print("| --- | --- | --- | --- | --- |")
    for speedup in (50, 200):
        for n in (1, 8, 32, 128):
            compute = seconds / speedup
            comm = 0.0 if n == 1 else (2 * (n - 1) / n * dense + (n - 1) * sparse) / 12.5e9
            steps = CRITEO_ROWS / (batch * n)
            hours = steps * (compute + comm) / 3600
            print(
                f"| {n} | {speedup}× | {compute * 1e3:.2f} ms | {comm * 1e3:.2f} ms | {hours:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", required=True)
    parser.add_argument("--only", default="bytes,workers,projection")
    args = parser.parse_args()
    only = set(args.only.split(","))
    _split_cpu()
    from dcn_cli.data.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        ctr = str(Path(tmp) / "ctr")
        generate("ctr", ctr, rows=100_000, seed=0, vocab_size=1_000_000)
        measured = bytes_section(args.ml100k, ctr) if "bytes" in only else None
        if "workers" in only:
            workers_section(args.ml100k)
        if "projection" in only:
            projection_section(ctr, measured)


if __name__ == "__main__":
    main()
