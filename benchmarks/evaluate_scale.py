"""``dcn evaluate`` at scale: its time and peak memory on a checkpoint's own test split.

    python benchmarks/evaluate_scale.py [--work DIR] [--repeats 3] [--source DIR ...]

Uses ``dcn generate ctr`` data under ``--work`` (default ``/tmp/dcn-scale``,
shared with ``use_scale.py`` and ``data_scale.py``; made when missing): 500k
rows (one file) and 5M rows (5 files), each with its truth side files, so
evaluate computes the Bayes-optimal figures too. A stacked DCN (embedding
16, one epoch) is trained on the 500k rows once; a copy of its checkpoint
names the 5M rows as its data (same columns, same generator), so the same
model is evaluated on 100k and on 1M test rows.

Each ``dcn evaluate`` runs in a fresh process, alternated, ``--repeats`` times;
it prints the seconds of ``evaluate`` itself (imports left out) and the
process's peak RSS. TensorFlow and the model set a floor of about 1.3 GB
under which the data's own memory hides at these sizes, so the
Bayes-optimal figures, the part that grew with the rows, are also measured
alone, in a process that never imports TensorFlow.

``--source`` names dcn source trees to compare (each a directory holding
``dcn_cli``; default this one), run side by side in the same loop, e.g. a
``git worktree`` of an older commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from child import report  # noqa: E402
from use_scale import dataset  # noqa: E402 (the same data, made once)

MODEL = {"arch": "stacked", "embedding_dim": 16}

CHILD = """
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[3]]
from child import peak_mib
from dcn_cli import backend
backend.load()
from dcn_cli.inspect.evaluate import evaluate
start = time.perf_counter()
metrics = evaluate(sys.argv[2])
seconds = time.perf_counter() - start
peak = peak_mib()
print(json.dumps({"rows": metrics["rows"], "seconds": seconds, "peak_mib": peak,
                  "bayes_auc": metrics.get("bayes_auc")}))
"""


BAYES = """
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[3]]
from child import peak_mib
from dcn_cli.data.sources import open_table
from dcn_cli.data.truth import bayes_optimal
start = time.perf_counter()
figures = bayes_optimal(open_table(sys.argv[2]), 0.0)
seconds = time.perf_counter() - start
peak = peak_mib()
print(json.dumps({"rows": 0, "seconds": seconds, "peak_mib": peak,
                  "bayes_auc": figures["bayes_auc"]}))
"""


def run_child(code: str, source: Path, target: Path) -> dict:
    return report([sys.executable, "-c", code, str(source), str(target), str(ROOT / "benchmarks")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dcn-scale"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source", type=Path, action="append")
    args = parser.parse_args()
    sources = [s.resolve() for s in args.source or [ROOT]]
    args.work.mkdir(parents=True, exist_ok=True)
    small, large = dataset(args.work, 500_000), dataset(args.work, 5_000_000)

    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.run import TrainSettings, train

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        ckpts = {"500k": Path(tmp) / "ckpt-500k", "5M": Path(tmp) / "ckpt-5M"}
        train(
            MODEL,
            DataSpec(str(small), min_count=1),
            TrainSettings(epochs=1, batch_size=4096, patience=0),
            ckpts["500k"],
        )
        shutil.copytree(ckpts["500k"], ckpts["5M"])
        config = ckpts["5M"] / "config.json"
        record = json.loads(config.read_text())
        record["data"]["data"] = str(large)
        record["data"].pop("data_from_checkpoint", None)
        config.write_text(json.dumps(record))

        jobs = {
            "evaluate 500k": (CHILD, ckpts["500k"]),
            "evaluate 5M": (CHILD, ckpts["5M"]),
            "Bayes alone 500k": (BAYES, small),
            "Bayes alone 5M": (BAYES, large),
        }
        runs: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.repeats):
            for source in sources:
                for name, (code, target) in jobs.items():
                    result = run_child(code, source, target)
                    runs.setdefault((str(source), name), []).append(result)
                    print(
                        f"{source} {name}: {result['seconds']:.1f} s, "
                        f"peak RSS {result['peak_mib']:,.0f} MiB, "
                        f"Bayes AUC {result['bayes_auc']:.6f}",
                        flush=True,
                    )
        for (source, name), results in runs.items():
            seconds = [r["seconds"] for r in results]
            peaks = [r["peak_mib"] for r in results]
            print(
                f"{source} {name}: median {np.median(seconds):.1f} s "
                f"({', '.join(f'{s:.1f}' for s in seconds)}); median peak RSS "
                f"{np.median(peaks):,.0f} MiB ({', '.join(f'{p:,.0f}' for p in peaks)})"
            )
        for source in sources:
            for kind in ("evaluate", "Bayes alone"):
                ratio = np.median(
                    [r["peak_mib"] for r in runs[(str(source), f"{kind} 5M")]]
                ) / np.median([r["peak_mib"] for r in runs[(str(source), f"{kind} 500k")]])
                print(f"{source}: {kind}, peak RSS 5M rows / 500k rows: {ratio:.3f}")


if __name__ == "__main__":
    main()
