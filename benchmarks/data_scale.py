"""The data layer at scale: parsing, streamed training, memory, the cache, quality.

    python benchmarks/data_scale.py [--work DIR] [--only parse,stream,memory,quality]

Datasets are made with ``dcn generate ctr`` under ``--work`` (default
``/tmp/dcn-scale``): 500k rows (126 MB of CSV), 5M rows (1.3 GB, over the
512 MiB in-memory budget) and, for ``memory``, 20M rows (5.2 GB). Every
training run is a fresh process (``python data_scale.py child ...``) that
reports its own peak RSS, when it reached its first training step (from
process start) and the rows/s of its training epochs. The model is the
issue's: a stacked DCN with embedding 16, batch 4096, else dcn's defaults,
one epoch.

- ``parse``: rows/s of ``pyarrow.csv.read_csv`` (raw, its defaults) and of
  dcn's reader (typed, checked chunks) on the 500k file, alternated, 9 each;
  the ratio of each pair and their median. Target >= 0.7.
- ``stream``: on 5M rows, a run with a cold cache (streamed), then alternated
  runs held in memory (``DCN_MEMORY_BUDGET_MB`` raised) and streamed with the
  cache warm. Targets: streamed / in-memory rows/s >= 0.8; warm first step
  under 0.2x the cold one.
- ``memory``: peak RSS of streamed runs on 5M and 20M rows (target: within
  15%), and of the in-memory run on 500k rows (target: under 1.2 GB); each
  run from a cold cache.
- ``quality``: on 5M rows (80/20), DCN and DNN trained ``--quality-epochs``
  epochs, their test AUC against the Bayes-optimal AUC from the truth side
  files (``dcn evaluate``).
- ``pipeline``: rows/s of the streamed input alone, no model, on the 5M
  rows' training split.
- ``ranks``: where ``dcn explain`` ranks the three planted crosses on the
  quality run's DCN, and where the plain Frobenius norm of each block would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from child import peak_mib  # noqa: E402

MODEL = {"arch": "stacked", "embedding_dim": 16}
BATCH = 4096
PLANTED = [("C1", "C2"), ("C3", "I1"), ("I2", "I3")]


def dataset(work: Path, rows: int) -> Path:
    out = work / f"ctr-{rows}"
    if not (out / "schema.json").exists():
        from dcn_cli.data.generate import generate

        generate("ctr", out, rows=rows)
    return out


def clear_cache(data: Path) -> None:
    shutil.rmtree(data / ".dcn-cache", ignore_errors=True)


# ---------------------------------------------------------------- child


def child(args) -> None:
    """One training run in this process; prints what it measured as JSON."""
    from dcn_cli import backend

    backend.load()
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train import engine
    from dcn_cli.train.run import TrainSettings, train

    first_step = {}
    fit = engine.Engine.fit

    def timed_fit(self, *a, **k):
        first_step.setdefault("s", time.perf_counter() - START)
        first_step["in_memory"] = self.prepared.in_memory
        first_step["cached"] = self.prepared.cached
        first_step["train_rows"] = self.prepared.rows["train"]
        return fit(self, *a, **k)

    engine.Engine.fit = timed_fit
    spent = {"evaluate_s": 0.0, "save_s": 0.0}

    def timing(owner, name, key):
        original = getattr(owner, name)

        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[key] += time.perf_counter() - start

        setattr(owner, name, timed)

    from dcn_cli.model import checkpoint

    timing(engine.Engine, "evaluate", "evaluate_s")  # validation passes too, if any
    timing(checkpoint, "save_model", "save_s")
    imported = time.perf_counter() - START
    model = {**MODEL, "arch": args.arch}
    settings = TrainSettings(epochs=args.epochs, batch_size=BATCH, patience=0)
    result = train(model, DataSpec(args.data, min_count=1), settings, args.out, force=True)
    peak = peak_mib()
    print(
        json.dumps(
            {
                "first_step_s": round(first_step["s"], 2),
                "imports_s": round(imported, 2),
                **{k: round(v, 2) for k, v in spent.items()},
                "in_memory": first_step["in_memory"],
                "cached": first_step["cached"],
                "train_seconds": result.metrics["train_seconds"],
                "rows_per_s": round(
                    first_step["train_rows"] * args.epochs / result.metrics["train_seconds"]
                ),
                "wall_s": round(time.perf_counter() - START, 2),
                "peak_rss_mb": round(peak),
                "params": result.metrics["params"],
                "auc": result.metrics["auc"],
            }
        )
    )


def run_child(data: Path, out: Path, budget_mb: float | None = None, arch="stacked", epochs=1):
    env = dict(os.environ)
    if budget_mb is not None:
        env["DCN_MEMORY_BUDGET_MB"] = str(budget_mb)
    command = [sys.executable, __file__, "child", "--data", str(data), "--out", str(out)]
    command += ["--arch", arch, "--epochs", str(epochs)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {data.name} budget={budget_mb} {arch}: {result}", flush=True)
    return result


# ---------------------------------------------------------------- parts


def parse(work: Path, repeats: int) -> dict:
    import pyarrow.csv as pa_csv

    from dcn_cli.data.sources import open_table

    data = dataset(work, 500_000)
    path = data / "data-00000.csv"
    raw, ours = [], []
    pa_csv.read_csv(path)  # warm up: the page cache, pyarrow's thread pool
    for _ in range(repeats):
        start = time.perf_counter()
        rows = pa_csv.read_csv(path).num_rows
        raw.append(rows / (time.perf_counter() - start))
        start = time.perf_counter()
        rows = sum(chunk.num_rows for chunk in open_table(str(data)).chunks())
        ours.append(rows / (time.perf_counter() - start))
    ratios = [o / r for o, r in zip(ours, raw, strict=True)]
    result = {
        "pyarrow_rows_per_s": round(float(np.median(raw))),
        "dcn_rows_per_s": round(float(np.median(ours))),
        "ratio_median": round(float(np.median(ratios)), 3),
        "ratios": [round(r, 3) for r in ratios],
    }
    print("parse:", result, flush=True)
    return result


def stream(work: Path, repeats: int) -> dict:
    data = dataset(work, 5_000_000)
    out = work / "ckpt"
    clear_cache(data)
    cold = run_child(data, out)
    held, streamed = [], []
    for _ in range(repeats):
        held.append(run_child(data, out, budget_mb=100_000))
        streamed.append(run_child(data, out))
    ratios = [s["rows_per_s"] / h["rows_per_s"] for s, h in zip(streamed, held, strict=True)]
    warm = float(np.median([s["first_step_s"] for s in streamed]))
    result = {
        "cold_first_step_s": cold["first_step_s"],
        "warm_first_step_s": warm,
        "first_step_ratio": round(warm / cold["first_step_s"], 3),
        "in_memory_rows_per_s": [h["rows_per_s"] for h in held],
        "streamed_rows_per_s": [s["rows_per_s"] for s in streamed],
        "stream_ratio_median": round(float(np.median(ratios)), 3),
        "ratios": [round(r, 3) for r in ratios],
        "peak_rss_mb": {"cold": cold["peak_rss_mb"], "in_memory": held[0]["peak_rss_mb"]},
    }
    print("stream:", result, flush=True)
    return result


def memory(work: Path) -> dict:
    """Each run from a cold cache, so that each includes the preparation pass."""
    out = work / "ckpt"
    runs = []
    for rows in (500_000, 5_000_000, 20_000_000):
        clear_cache(dataset(work, rows))
        runs.append(run_child(dataset(work, rows), out))
    small, five, twenty = runs
    result = {
        "in_memory_500k_peak_mb": small["peak_rss_mb"],
        "streamed_5m_peak_mb": five["peak_rss_mb"],
        "streamed_20m_peak_mb": twenty["peak_rss_mb"],
        "difference": round(twenty["peak_rss_mb"] / five["peak_rss_mb"] - 1, 3),
        "params": {"5m": five["params"], "20m": twenty["params"]},
    }
    print("memory:", result, flush=True)
    return result


def quality(work: Path, epochs: int) -> dict:
    data = dataset(work, 5_000_000)
    result = {}
    for arch in ("stacked", "deep"):
        out = work / f"quality-{arch}"
        run_child(data, out, arch=arch, epochs=epochs)
        evaluated = subprocess.run(
            [sys.executable, "-m", "dcn_cli", "evaluate", str(out), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        metrics = json.loads(evaluated.stdout)
        result[arch] = {k: round(v, 4) for k, v in metrics.items() if k != "rows"}
    print("quality:", result, flush=True)
    return result


def planted_ranks(ckpt: Path, work: Path) -> dict:
    """Where ``dcn explain`` ranks the planted crosses among all pairs of features.

    ``explain``: its ranking by the weights' strength (each block's root mean square;
    0.4 ranks by flow where the data is at hand). ``frobenius``:
    by each block's plain norm, what ``explain --block-norm`` drew before; a
    16-wide embedding's block has 16 or 256 entries where two numbers' has one,
    which that norm rewards.
    """
    from dcn_cli.inspect.explain import explain, top_crosses
    from dcn_cli.model import checkpoint

    layer = explain(
        ckpt, block_norm=True, top=10_000, out=work / "explain.png", rank_by="strength"
    )["layers"][0]
    names, blocks = layer["features"], np.array(layer["matrix"])
    record = checkpoint.load_record(ckpt)
    widths = np.array([e["width"] for e in checkpoint.model_config(record, ckpt).feature_map()])
    ranks = {}
    for kind, ranking in (
        ("explain", layer["top"]),
        ("frobenius", top_crosses(blocks * np.sqrt(np.outer(widths, widths)), names, 10_000)),
    ):
        pairs = [tuple(sorted(c["features"])) for c in ranking]
        ranks[kind] = {"x".join(p): pairs.index(tuple(sorted(p))) + 1 for p in PLANTED}
    ranks["pairs"] = len(layer["top"])
    return ranks


def pipeline(work: Path) -> dict:
    """Rows/s of the streamed input alone (no model): 5M rows' training split, one epoch."""
    from dcn_cli import backend

    backend.load()
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.pipeline import Encoder, streamed_batches

    os.environ["DCN_MEMORY_BUDGET_MB"] = "0"
    prepared = DataSpec(str(dataset(work, 5_000_000)), min_count=1).prepare()
    encoder = Encoder(prepared.features)
    start, rows = time.perf_counter(), 0
    for _, y, _ in streamed_batches(prepared, encoder, "train", BATCH, seed=0):
        rows += int(y.shape[0])
    result = {"rows": rows, "rows_per_s": round(rows / (time.perf_counter() - start))}
    print("pipeline:", result, flush=True)
    return result


def ranks(work: Path, epochs: int) -> dict:
    """The planted crosses' ranks on the quality run's DCN (trained first if absent)."""
    ckpt = work / "quality-stacked"
    if not (ckpt / "metrics.json").exists():
        quality(work, epochs)
    result = planted_ranks(ckpt, work)
    print("ranks:", result, flush=True)
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        parser = argparse.ArgumentParser()
        parser.add_argument("child")
        parser.add_argument("--data", required=True)
        parser.add_argument("--out", required=True)
        parser.add_argument("--arch", default="stacked")
        parser.add_argument("--epochs", type=int, default=1)
        child(parser.parse_args())
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dcn-scale"))
    parser.add_argument("--only", default="parse,stream,memory,quality,pipeline,ranks")
    parser.add_argument("--repeats", type=int, default=2, help="alternated training pairs")
    parser.add_argument("--quality-epochs", type=int, default=2)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    parts = args.only.split(",")
    results = {}
    if "parse" in parts:
        results["parse"] = parse(args.work, 9)
    if "stream" in parts:
        results["stream"] = stream(args.work, args.repeats)
    if "memory" in parts:
        results["memory"] = memory(args.work)
    if "quality" in parts:
        results["quality"] = quality(args.work, args.quality_epochs)
    if "pipeline" in parts:
        results["pipeline"] = pipeline(args.work)
    if "ranks" in parts:
        results["ranks"] = ranks(args.work, args.quality_epochs)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
