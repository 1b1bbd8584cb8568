"""Reproduce the README's tables: the tutorial's toy, MovieLens 100K, the paper's polynomials.

    python benchmarks/reproduce.py --ml100k DIR [--runs 5] [--only toy,ml,defaults,poly,speed]
        [--repeats 3]

DIR holds the real MovieLens 100K (``../shared/data/fetch-movielens-100k DIR``
writes it). Every section prints a Markdown table; the numbers in the README
are this script's output on the machine named there. Sections:

- toy: the mixer, one cross layer (16 parameters), Adagrad 0.4, batch 1000,
  100 epochs, seeds 0..runs-1; and the tutorial's 512-256-128 DNN, seed 0.
- ml: ``dcn compare dcn dcn-lr dcn-mix dnn`` under the tutorial's protocol (Adam
  0.01, batch 8192, 8 epochs, embedding 32), with wall time and the fraction
  of the machine's matmul roofline, measured in the same run.
- defaults: ``dcn compare dcn dnn`` with the tool's own default settings.
- poly: the DCN-V2 paper's f1 and f2 with one cross layer (Adagrad 0.4, batch 1000, 200 epochs).
- speed: the ml section's compare, ``repeats`` times in float32 and in
  mixed_bfloat16 (interleaved), each against the matmul throughput of its own
  dtype measured just before it; then the ``dcn compare`` command itself,
  once per precision, and ``dcn --help``, timed as subprocesses.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcn_cli import backend  # noqa: E402


def matmul_flops_per_second(size: int = 2048, repeats: int = 20, dtype: str = "float32") -> float:
    """Measured matmul throughput of this machine in ``dtype`` (median of 5 timings)."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((size, size)), dtype)
    tf.matmul(a, a).numpy()
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            out = tf.matmul(a, a)
        out.numpy()
        rates.append(2 * size**3 * repeats / (time.perf_counter() - start))
    return float(np.median(rates))


def toy(runs: int) -> None:
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.inspect.explain import explain
    from dcn_cli.train.run import TrainSettings, train

    print("\n### Toy: the tutorial's mixer\n")
    print("| model | seed | test RMSE | trainable params | train s | strongest cross |")
    print("| --- | --- | --- | --- | --- | --- |")
    rmses = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(runs):
            out = Path(tmp) / f"cross-{seed}"
            settings = TrainSettings(
                epochs=100, batch_size=1000, lr=0.4, optimizer="adagrad", seed=seed, patience=0
            )
            result = train({"arch": "cross"}, DataSpec(), settings, out=out, tensorboard=False)
            top = explain(out, top=1, rank_by="strength")["layers"][0]["top"][0]["features"]
            m = result.metrics
            rmses.append(m["rmse"])
            print(
                f"| cross, 1 layer | {seed} | {m['rmse']:.3g} | {m['params']} | "
                f"{m['train_seconds']:.1f} | {' x '.join(top)} |"
            )
        settings = TrainSettings(
            epochs=100, batch_size=1000, lr=0.4, optimizer="adagrad", seed=0, patience=0
        )
        result = train(
            {"arch": "deep", "deep_layers": [512, 256, 128], "dropout": 0.0},
            DataSpec(),
            settings,
            out=Path(tmp) / "dnn",
            tensorboard=False,
        )
        m = result.metrics
        print(
            f"| DNN 512-256-128 | 0 | {m['rmse']:.3g} | {m['params']:,} | "
            f"{m['train_seconds']:.1f} | - |"
        )
    print(f"\nCross network median RMSE over {runs} seeds: {np.median(rmses):.3g}")


TUTORIAL_FLAGS = (
    "--epochs 8 --batch-size 8192 --lr 0.01 --embedding-l2 0 --dropout 0 --patience 0 --min-count 1"
)


def compare_flops(result: dict, data: str, settings) -> float:
    """Matmul FLOPs of a compare: 3 x forward per training example, 1 x per test example."""
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.model.config import ModelConfig
    from dcn_cli.model.factory import forward_flops

    features = DataSpec(data).prepare().features
    rows, flops = result["rows"], 0.0
    for m in result["models"]:
        per_example = forward_flops(ModelConfig(features=features, **m["config"]))
        runs = len(m["runs"])
        flops += runs * per_example * (3 * rows["train"] * settings.epochs + rows["test"])
    return flops


def comparison(
    title: str,
    models: list[str],
    data: str,
    runs: int,
    settings,
    peak: float,
    embedding_l2: float,
    dropout: float,
    min_count: int,
) -> None:
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.compare import compare

    start = time.perf_counter()
    result = compare(
        models,
        runs,
        DataSpec(data, min_count=min_count),
        settings,
        embedding_l2=embedding_l2,
        dropout=dropout,
    )
    wall = time.perf_counter() - start
    rows = result["rows"]
    print(f"\n### {title}\n")
    print(
        f"Train {rows['train']:,} rows, test {rows['test']:,}; {settings.optimizer} "
        f"{settings.lr}, batch {settings.batch_size}, {settings.epochs} epochs, "
        f"embedding L2 {embedding_l2:g}, dropout {dropout:g}, "
        f"{runs} runs per model (seeds 0..{runs - 1}).\n"
    )
    print("| model | test RMSE mean ± std | runs | params | s / run | p vs first |")
    print("| --- | --- | --- | --- | --- | --- |")
    for m in result["models"]:
        p = "-" if m["p_value"] is None else f"{m['p_value']:.3g}"
        runs_text = " ".join(f"{v:.4f}" for v in m["runs"])
        print(
            f"| {m['name']} | {m['mean']:.4f} ± {m['std']:.4f} | {runs_text} | "
            f"{m['params']:,} | {m['seconds_per_run']:.1f} | {p} |"
        )
    flops = compare_flops(result, data, settings)
    print(
        f"\nWall time of the whole compare: {wall:.1f} s. Model FLOPs (3 x forward "
        f"matmuls per training example, 1 x per test example): {flops / 1e9:.0f} GFLOP; "
        f"measured float32 matmul throughput {peak / 1e9:.0f} GFLOP/s; "
        f"fraction of roofline {flops / (wall * peak):.0%}."
    )


def _median_seconds(command: list[str], times: int) -> float:
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def speed(data: str, runs: int, repeats: int) -> None:
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.compare import compare
    from dcn_cli.train.run import TrainSettings

    settings = TrainSettings(epochs=8, batch_size=8192, lr=0.01, optimizer="adam", patience=0)
    precisions = ("float32", "mixed_bfloat16")
    walls: dict[str, list[float]] = {p: [] for p in precisions}
    peaks: dict[str, list[float]] = {p: [] for p in precisions}
    results: dict[str, dict] = {}
    for _ in range(repeats):
        for precision in precisions:
            peaks[precision].append(
                matmul_flops_per_second(dtype="bfloat16" if "bfloat16" in precision else "float32")
            )
            start = time.perf_counter()
            results[precision] = compare(
                ["dcn", "dcn-lr", "dnn"],
                runs,
                DataSpec(data, min_count=1),
                settings,
                embedding_l2=0.0,
                dropout=0.0,
                precision=precision,
            )
            walls[precision].append(time.perf_counter() - start)
    dcn = [str(Path(sys.executable).parent / "dcn")]
    print("\n### Speed: `dcn compare dcn dcn-lr dnn`, MovieLens 100K, the tutorial's protocol\n")
    print(
        f"{runs} runs per model; compare() timed in-process {repeats} times per precision, "
        "interleaved; medians. Roofline: model FLOPs / (wall x measured square-matmul "
        "throughput of the same dtype).\n"
    )
    print(
        "| precision | compare wall s (median) | all walls | matmul GFLOP/s | model GFLOP "
        "| fraction of roofline | time vs float32 | dcn / dcn-lr / dnn RMSE |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base = float(np.median(walls["float32"]))
    for precision in precisions:
        wall, peak = float(np.median(walls[precision])), float(np.median(peaks[precision]))
        flops = compare_flops(results[precision], data, settings)
        rmse = " / ".join(f"{m['mean']:.4f}" for m in results[precision]["models"])
        print(
            f"| {precision} | {wall:.1f} | {' '.join(f'{w:.1f}' for w in walls[precision])} | "
            f"{peak / 1e9:.0f} | {flops / 1e9:,.0f} | {flops / (wall * peak):.0%} | "
            f"{wall / base:.2f} | {rmse} |"
        )
    print()
    for precision in precisions:
        command = dcn + ["compare", "dcn", "dcn-lr", "dnn", "--runs", str(runs), "--data", data]
        command += [*TUTORIAL_FLAGS.split(), "--precision", precision, "--out"]
        with tempfile.TemporaryDirectory() as tmp:
            seconds = _median_seconds(command + [tmp], 1)
        print(f"- `dcn compare ... --precision {precision}` end to end (one run): {seconds:.1f} s")
    print(f"- `dcn --help` (median of 5): {_median_seconds(dcn + ['--help'], 5):.2f} s")


def poly() -> None:
    from dcn_cli.data.generate import generate
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.run import TrainSettings, train

    print("\n### DCN-V2 paper polynomials, one cross layer\n")
    print("| function | rows | test RMSE | params | train s |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for function in ("f1", "f2"):
            data = Path(tmp) / function
            generate("poly", data, rows=20_000, function=function)
            settings = TrainSettings(
                epochs=200, batch_size=1000, lr=0.4, optimizer="adagrad", patience=0
            )
            result = train(
                {"arch": "cross"},
                DataSpec(str(data)),
                settings,
                out=Path(tmp) / f"ck-{function}",
                tensorboard=False,
            )
            m = result.metrics
            print(
                f"| {function} | 20,000 | {m['rmse']:.2e} | {m['params']} | "
                f"{m['train_seconds']:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", help="directory of the real MovieLens 100K files")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="toy,ml,defaults,poly,speed")
    parser.add_argument("--repeats", type=int, default=3, help="speed: timings per precision")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    backend.load()
    import tensorflow as tf

    from dcn_cli import settings
    from dcn_cli.train.run import TrainSettings

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs.")
    if "toy" in sections:
        toy(args.runs)
    if sections & {"ml", "defaults", "speed"}:
        if not args.ml100k:
            sys.exit("--ml100k DIR is needed for the MovieLens sections")
        peak = matmul_flops_per_second()
        if "ml" in sections:
            tutorial = TrainSettings(
                epochs=8, batch_size=8192, lr=0.01, optimizer="adam", patience=0
            )
            comparison(
                "MovieLens 100K, the tutorial's protocol",
                ["dcn", "dcn-lr", "dcn-mix", "dnn"],
                args.ml100k,
                args.runs,
                tutorial,
                peak,
                embedding_l2=0.0,
                dropout=0.0,
                min_count=1,  # the tutorial embeds every movie and user it sees
            )
        if "defaults" in sections:
            comparison(
                "MovieLens 100K, dcn's own defaults",
                ["dcn", "dnn"],
                args.ml100k,
                args.runs,
                TrainSettings(),
                peak,
                embedding_l2=settings.EMBEDDING_L2,
                dropout=settings.DROPOUT,
                min_count=settings.MIN_COUNT,
            )
        if "speed" in sections:
            speed(args.ml100k, args.runs, args.repeats)
    if "poly" in sections:
        poly()


if __name__ == "__main__":
    main()
