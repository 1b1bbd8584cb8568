"""``dcn train`` and ``dcn compare`` against the TFRS tutorial's code, side by side.

    python benchmarks/speed.py --ml100k DIR [--repeats 3]

Under the tutorial's MovieLens 100K protocol (stacked DCN, embedding 32,
Dense 192-192, Adam 0.01, batch 8192, 8 epochs, float32), each repeat runs,
one after the other, each in a fresh process:

- the tutorial's code for one DCN (``benchmarks/tfrs_tutorial.py DIR train``),
  then ``dcn``'s ``train`` on the same data and settings;
- the tutorial's ``run_models`` for DCN, low-rank DCN and DNN, 5 runs each
  (``tfrs_tutorial.py DIR compare``), then ``dcn compare dcn dcn-lr dnn --runs 5``.

Each process times its job from the data files to the last test metric,
after its imports (``dcn`` also writes its checkpoint or comparison files).
The script prints the medians, the ratio dcn / tutorial of each repeat
(timed side by side) and the RMSEs. The tutorial needs tf-keras and
tensorflow-recommenders in ``.bench-deps`` (see ``tfrs_tutorial.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TUTORIAL_MODEL = {"deep_layers": [192, 192], "dropout": 0.0, "embedding_l2": 0.0}


def _settings():
    from dcn_cli.train.run import TrainSettings

    return TrainSettings(epochs=8, batch_size=8192, lr=0.01, optimizer="adam", patience=0)


def dcn_job(path: str, job: str) -> dict:
    from dcn_cli import backend

    backend.load()
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.compare import compare
    from dcn_cli.train.run import train

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if job == "train":
            result = train(
                {"arch": "stacked", **TUTORIAL_MODEL},
                DataSpec(path, min_count=1),
                _settings(),
                out=Path(tmp) / "ckpt",
            )
            rmse = {"dcn": [result.metrics["rmse"]]}
        else:
            result = compare(
                ["dcn", "dcn-lr", "dnn"],
                5,
                DataSpec(path, min_count=1),
                _settings(),
                embedding_l2=0.0,
                dropout=0.0,
            )
            rmse = {m["name"]: m["runs"] for m in result["models"]}
    return {"seconds": time.perf_counter() - start, "rmse": rmse}


def run(side: str, job: str, path: str) -> dict:
    if side == "tutorial":
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(ROOT / ".bench-deps")}
        command = [sys.executable, str(ROOT / "benchmarks" / "tfrs_tutorial.py"), path, job]
    else:
        env = dict(os.environ)
        command = [sys.executable, __file__, "--ml100k", path, "--job", job]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{side} {job} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--job", choices=["train", "compare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:  # one dcn job, in this fresh process
        print(json.dumps(dcn_job(args.ml100k, args.job)))
        return

    results: dict[tuple[str, str], list[dict]] = {}
    for repeat in range(args.repeats):
        for job in ("train", "compare"):
            for side in ("tutorial", "dcn"):
                results.setdefault((side, job), []).append(run(side, job, args.ml100k))
                r = results[(side, job)][-1]
                print(f"repeat {repeat}: {side} {job} {r['seconds']:.1f} s", file=sys.stderr)

    print(
        "| job | tutorial s (median) | dcn s (median) | dcn / tutorial per repeat | median ratio |"
    )
    print("| --- | --- | --- | --- | --- |")
    for job in ("train", "compare"):
        tutorial = [r["seconds"] for r in results[("tutorial", job)]]
        ours = [r["seconds"] for r in results[("dcn", job)]]
        ratios = [o / t for o, t in zip(ours, tutorial, strict=True)]
        print(
            f"| {job} | {np.median(tutorial):.1f} | {np.median(ours):.1f} | "
            f"{' '.join(f'{x:.2f}' for x in ratios)} | {np.median(ratios):.2f} |"
        )
    print("\nTest RMSE, mean ± std over every run of every repeat:\n")
    print("| model | tutorial | dcn |")
    print("| --- | --- | --- |")
    for name in ("dcn", "dcn-lr", "dnn"):
        cells = []
        for side in ("tutorial", "dcn"):
            values = [v for r in results[(side, "compare")] for v in r["rmse"][name]]
            cells.append(f"{np.mean(values):.4f} ± {np.std(values):.4f}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
