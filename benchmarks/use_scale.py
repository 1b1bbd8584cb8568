"""Using a trained model at scale: ``dcn predict``'s speed and memory, ``dcn export``.

    python benchmarks/use_scale.py [--work DIR] [--repeats 3]

Uses ``dcn generate ctr`` data under ``--work`` (default ``/tmp/dcn-scale``,
shared with ``data_scale.py``; made when missing): 500k rows (one CSV file)
and 5M rows (5 files). A stacked DCN (embedding 16, batch 4096, one epoch)
is trained on the 500k rows once. Then, each in a fresh process, alternated,
``--repeats`` times:

- ``dcn predict`` over all 500k rows and over all 5M rows, to a CSV file:
  rows/s (from the first row read to the last written, the imports and
  model loading left out) and the process's peak RSS. The peak should not
  grow with the rows: the median peak of 5M over that of 500k is printed.
- ``dcn export``, and the SavedModel's ``serving_default`` in a process that
  cannot import dcn_cli, on the first 8,192 rows: the largest difference from
  ``dcn predict``'s numbers, and the milliseconds per call of 8,192 rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from child import peak_mib, report  # noqa: E402

MODEL = {"arch": "stacked", "embedding_dim": 16}
SERVE_ROWS = 8192


def dataset(work: Path, rows: int) -> Path:
    out = work / f"ctr-{rows}"
    if not (out / "schema.json").exists():
        from dcn_cli.data.generate import generate

        generate("ctr", out, rows=rows)
    return out


def child(data: str, ckpt: str, out: str) -> None:
    """One ``predict`` in this process; prints rows/s and peak RSS as JSON."""
    from dcn_cli import backend

    backend.load()
    import dcn_cli.inspect.predict as predict

    timing = {}
    scored = predict._scored

    def timed(*a, **k):
        timing["start"] = time.perf_counter()
        yield from scored(*a, **k)

    predict._scored = timed
    result = predict.predict(ckpt, data, out, force=True)
    seconds = time.perf_counter() - timing["start"]
    peak = peak_mib()
    print(json.dumps({"rows": result.rows, "seconds": seconds, "peak_mib": peak}))


SERVE = """
import json, sys, time
sys.modules["dcn_cli"] = None  # dcn_cli cannot be imported
import numpy as np, pyarrow as pa, pyarrow.csv as pa_csv, tensorflow as tf
saved, data, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
serve = tf.saved_model.load(saved).signatures["serving_default"]
inputs = serve.structured_input_signature[1]
types = {n: pa.string() if s.dtype == tf.string else pa.float32() for n, s in inputs.items()}
table = pa_csv.read_csv(data, convert_options=pa_csv.ConvertOptions(column_types=types))
table = table.slice(0, rows)
x = {n: tf.constant(table[n].to_numpy(zero_copy_only=False)) for n in inputs}
serve(**x)  # the first call traces
times = []
for _ in range(5):
    start = time.perf_counter()
    out = serve(**x)["prediction"].numpy().reshape(-1)
    times.append(time.perf_counter() - start)
print(json.dumps({"prediction": out.tolist(), "ms": 1000 * float(np.median(times))}))
"""


def run_child(data: Path, ckpt: Path, out: Path) -> dict:
    return report([sys.executable, __file__, "child", str(data), str(ckpt), str(out)])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dcn-scale"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    small, large = dataset(args.work, 500_000), dataset(args.work, 5_000_000)

    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.run import TrainSettings, train

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "ckpt"
        train(
            MODEL,
            DataSpec(str(small), min_count=1),
            TrainSettings(epochs=1, batch_size=4096, patience=0),
            ckpt,
        )
        runs: dict[str, list[dict]] = {"500k": [], "5M": []}
        for _ in range(args.repeats):
            for name, data in (("500k", small), ("5M", large)):
                result = run_child(data, ckpt, tmp / f"p-{name}.csv")
                runs[name].append(result)
                print(
                    f"predict {name}: {result['rows']:,} rows, "
                    f"{result['rows'] / result['seconds']:,.0f} rows/s, "
                    f"peak RSS {result['peak_mib']:,.0f} MiB",
                    flush=True,
                )
        for name, results in runs.items():
            rates = [r["rows"] / r["seconds"] for r in results]
            peaks = [r["peak_mib"] for r in results]
            print(
                f"predict {name}: median {np.median(rates):,.0f} rows/s "
                f"({', '.join(f'{r:,.0f}' for r in rates)}); median peak RSS "
                f"{np.median(peaks):,.0f} MiB ({', '.join(f'{p:,.0f}' for p in peaks)})"
            )
        ratio = np.median([r["peak_mib"] for r in runs["5M"]]) / np.median(
            [r["peak_mib"] for r in runs["500k"]]
        )
        print(f"peak RSS, 5M rows / 500k rows: {ratio:.3f}")

        from dcn_cli.model.export import export

        start = time.perf_counter()
        export(ckpt, tmp / "saved")
        print(f"export: {time.perf_counter() - start:.1f} s")
        first = tmp / "first.csv"
        with open(small / "data-00000.csv") as src, open(first, "w") as dst:
            for i, line in enumerate(src):
                if i > SERVE_ROWS:
                    break
                dst.write(line)
        done = subprocess.run(
            [sys.executable, "-c", SERVE, str(tmp / "saved"), str(first), str(SERVE_ROWS)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        served = json.loads(done.stdout.strip().splitlines()[-1])
        with open(tmp / "p-500k.csv") as handle:
            next(handle)
            expected = [
                float(line.rsplit(",", 1)[1])
                for _, line in zip(range(SERVE_ROWS), handle, strict=False)
            ]
        gap = float(np.max(np.abs(np.array(served["prediction"]) - np.array(expected))))
        print(
            f"serving_default without dcn, {SERVE_ROWS:,} rows: max |difference from dcn "
            f"predict| {gap:.2e}, {served['ms']:.1f} ms per call (median of 5)"
        )


if __name__ == "__main__":
    main()
