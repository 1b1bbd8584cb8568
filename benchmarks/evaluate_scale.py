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
process's peak RSS. ``--source`` names dcn source trees to compare (each a
directory holding ``dcn_cli``; default this one), run side by side in the
same loop, e.g. a ``git worktree`` of an older commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = {"arch": "stacked", "embedding_dim": 16}

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from dcn_cli import backend
backend.load()
from dcn_cli.training import evaluate
start = time.perf_counter()
metrics = evaluate(sys.argv[2])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"rows": metrics["rows"], "seconds": seconds, "peak_mib": peak,
                  "bayes_auc": metrics.get("bayes_auc")}))
"""


def dataset(work: Path, rows: int) -> Path:
    out = work / f"ctr-{rows}"
    if not (out / "schema.json").exists():
        from dcn_cli.generate import generate

        generate("ctr", out, rows=rows)
    return out


def run_child(source: Path, ckpt: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(ckpt)], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dcn-scale"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source", type=Path, action="append")
    args = parser.parse_args()
    sources = [s.resolve() for s in args.source or [ROOT]]
    args.work.mkdir(parents=True, exist_ok=True)
    small, large = dataset(args.work, 500_000), dataset(args.work, 5_000_000)

    from dcn_cli.data import DataSpec
    from dcn_cli.training import TrainSettings, train

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        ckpts = {"500k": Path(tmp) / "ckpt-500k", "5M": Path(tmp) / "ckpt-5M"}
        train(MODEL, DataSpec(str(small)), TrainSettings(epochs=1, batch_size=4096), ckpts["500k"])
        shutil.copytree(ckpts["500k"], ckpts["5M"])
        config = ckpts["5M"] / "config.json"
        record = json.loads(config.read_text())
        record["data"]["data"] = str(large)
        record["data"].pop("data_from_checkpoint", None)
        config.write_text(json.dumps(record))

        runs: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.repeats):
            for source in sources:
                for name, ckpt in ckpts.items():
                    result = run_child(source, ckpt)
                    runs.setdefault((str(source), name), []).append(result)
                    print(
                        f"{source} evaluate {name}: {result['rows']:,} test rows, "
                        f"{result['seconds']:.1f} s, peak RSS {result['peak_mib']:,.0f} MiB, "
                        f"Bayes AUC {result['bayes_auc']:.6f}",
                        flush=True,
                    )
        for (source, name), results in runs.items():
            seconds = [r["seconds"] for r in results]
            peaks = [r["peak_mib"] for r in results]
            print(
                f"{source} evaluate {name}: median {np.median(seconds):.1f} s "
                f"({', '.join(f'{s:.1f}' for s in seconds)}); median peak RSS "
                f"{np.median(peaks):,.0f} MiB ({', '.join(f'{p:,.0f}' for p in peaks)})"
            )
        for source in sources:
            ratio = np.median([r["peak_mib"] for r in runs[(str(source), "5M")]]) / np.median(
                [r["peak_mib"] for r in runs[(str(source), "500k")]]
            )
            print(f"{source}: peak RSS, 5M rows / 500k rows: {ratio:.3f}")


if __name__ == "__main__":
    main()
