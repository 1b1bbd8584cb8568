"""The targets of ``dcn tune``: what tuning buys, how fast trials go, and that a killed
study continues.

    python benchmarks/tune_targets.py movielens ML100K_DIR [--trials 40] [--out DIR] \
        [--flags '--epochs 40 --list movie_genres'] [--space benchmarks/movielens_space.toml]
    python benchmarks/tune_targets.py logs --data criteo.csv:label --data avazu.csv:click \
        [--seeds 5] [--trials 30]          # needs pip install -e '.[bench]'
    python benchmarks/tune_targets.py jobs DATA [--trials 12] [--repeats 3] [--flags OPTIONS]
    python benchmarks/tune_targets.py kill DATA [--trials 4] [--flags OPTIONS]

- ``movielens``: ``dcn tune`` on MovieLens 100K's training rows (its validation
  split held out of them), timed; then ``dcn compare dcn OUT/best.json --runs 5``
  on the fixed test split: the tuned settings' test RMSE over 5 seeds against the
  defaults'.
- ``logs``: for each split seed s, ``dcn tune`` on split s's training rows only,
  then the tuned settings (``dcn train --config best.json``), the defaults,
  logistic regression and LightGBM on split s's test rows (the protocol of
  ``real_logs.py``, which this reuses).
- ``jobs``: trials finished per hour with ``--jobs 1`` and ``--jobs 2``, runs
  alternated, each on a fresh study; medians and their ratio.
- ``kill``: ``dcn tune`` killed with SIGKILL inside its second trial, then the
  same command: every trial's number once, the killed trial failed, the count
  reached, the database's integrity check ``ok``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DCN = [sys.executable, "-m", "dcn_cli"]


def dcn(*args: str, quiet: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*DCN, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dcn {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    if not quiet:
        print(result.stdout, flush=True)
    return result


def movielens(args) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="tune-ml-"))
    start = time.perf_counter()
    flags = args.flags.split()
    dcn(
        "tune",
        "--data",
        args.data,
        "--trials",
        str(args.trials),
        "--out",
        str(out / "study"),
        *(["--space", args.space] if args.space else []),
        *flags,
    )
    searched = time.perf_counter() - start
    summary = json.loads((out / "study" / "trials.json").read_text())
    states = [t["state"] for t in summary["trials"]]
    print(
        f"tune: {args.trials} trials counted ({states.count('complete')} complete, "
        f"{states.count('pruned')} pruned, {states.count('fail')} failed) in {searched / 60:.1f} "
        f"min; best validation rmse {summary['best_value']:.4f} (trial {summary['best_trial']})",
        flush=True,
    )
    print("best settings:", json.dumps(summary["best_settings"]), flush=True)
    start = time.perf_counter()
    result = dcn(
        "compare",
        "dcn",
        str(out / "study" / "best.json"),
        "--runs",
        str(args.runs),
        "--data",
        args.data,
        "--out",
        str(out / "compare"),
        "--json",
        *flags,
    )
    compared = time.perf_counter() - start
    comparison = json.loads(result.stdout)
    for m in comparison["models"]:
        p = "" if m["p_value"] is None else f", p = {m['p_value']:.3g}"
        print(
            f"{m['name']:6s} test rmse {m['mean']:.4f} ± {m['std']:.4f} over {args.runs} seeds{p}"
        )
    print(f"(compare took {compared / 60:.1f} min)")


def logs(args) -> None:
    import numpy as np
    from real_logs import SplitSpec, baseline_arrays, lightgbm, logreg, run_dcn
    from typer.testing import CliRunner

    from dcn_cli.commands import app
    from dcn_cli.data import sources

    for data in args.data:
        path, _, label = data.partition(":")
        table: dict[str, list[float]] = {}
        for seed in range(args.seeds):
            features, train, test, target = baseline_arrays(path, label, seed)
            table.setdefault("logreg", []).append(logreg(features, train, test, target)["auc"])
            table.setdefault("lightgbm", []).append(lightgbm(features, train, test, target)["auc"])
            table.setdefault("dcn defaults", []).append(run_dcn(path, label, seed, {})["auc"])
            with tempfile.TemporaryDirectory() as out:
                argv = ["tune", "--data", path, "--label", label, "--trials", str(args.trials)]
                argv += ["--out", out, "--json"]
                SplitSpec.split_seed = seed
                original, sources.DataSpec = sources.DataSpec, SplitSpec
                start = time.perf_counter()
                try:
                    result = CliRunner().invoke(app, argv, catch_exceptions=False)
                finally:
                    sources.DataSpec = original
                if result.exit_code != 0:
                    raise SystemExit(f"dcn {' '.join(argv)} failed:\n{result.output}")
                minutes = (time.perf_counter() - start) / 60
                best = Path(out) / "best.json"
                tuned = run_dcn(path, label, seed, {"config": str(best)})
            table.setdefault("dcn tuned", []).append(tuned["auc"])
            line = "  ".join(f"{n} {v[-1]:.4f}" for n, v in table.items())
            print(
                f"{Path(path).name} split {seed}: auc {line} (tune {minutes:.1f} min)", flush=True
            )
        print(f"\n{Path(path).name}: test AUC over {args.seeds} split seeds (mean ± sd)")
        for name, values in table.items():
            v = np.array(values)
            wins = ""
            if name == "dcn tuned":
                wins = "; beats logreg on {} of {}, lightgbm on {} of {}".format(
                    int(np.sum(v > np.array(table["logreg"]))),
                    len(v),
                    int(np.sum(v > np.array(table["lightgbm"]))),
                    len(v),
                )
            print(f"  {name:13s} {v.mean():.4f} ± {v.std():.4f}{wins}", flush=True)


def jobs(args) -> None:
    rates: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for n in (1, 2) if repeat % 2 == 0 else (2, 1):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                dcn(
                    "tune",
                    "--data",
                    args.data,
                    "--trials",
                    str(args.trials),
                    "--jobs",
                    str(n),
                    "--out",
                    out,
                    "--seed",
                    str(repeat),
                    *args.flags.split(),
                )
                wall = time.perf_counter() - start
            rates[n].append(args.trials / wall * 3600)
            print(
                f"repeat {repeat}: --jobs {n}: {args.trials} trials in {wall:.1f} s, "
                f"{rates[n][-1]:.0f} trials/hour",
                flush=True,
            )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(
        f"median trials/hour: --jobs 1 {one:.0f}, --jobs 2 {two:.0f}; ratio {two / one:.2f} "
        f"(each run includes the final training of the best checkpoint)"
    )


def kill(args) -> None:
    with tempfile.TemporaryDirectory() as out:
        argv = [*DCN, "tune", "--data", args.data, "--trials", str(args.trials), "--out", out]
        argv += args.flags.split()
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        db = Path(out) / "study.db"
        while True:  # until the second trial is running
            time.sleep(0.5)
            if process.poll() is not None:
                raise SystemExit(
                    f"dcn tune ended before its second trial:\n{process.stderr.read()}"
                )
            if db.exists():
                with sqlite3.connect(db) as con:
                    try:
                        rows = con.execute("select state from trials").fetchall()
                    except sqlite3.OperationalError:
                        continue
                if len(rows) >= 2 and rows[-1][0] == "RUNNING":
                    break
        time.sleep(1.0)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        print(f"killed with SIGKILL; trials then: {rows}")
        again = subprocess.run(argv, capture_output=True, text=True)
        print("the same command again: exit", again.returncode)
        print("\n".join(line for line in again.stderr.splitlines() if line.startswith("trial")))
        with sqlite3.connect(db) as con:
            trials = con.execute("select number, state from trials order by number").fetchall()
            check = con.execute("pragma integrity_check").fetchone()[0]
        numbers = [n for n, _ in trials]
        counted = sum(s in ("COMPLETE", "PRUNED") for _, s in trials)
        print(f"trials: {trials}")
        print(
            f"numbers unique: {len(numbers) == len(set(numbers))}; counted {counted} of "
            f"{args.trials} asked; integrity_check: {check}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("movielens")
    p.add_argument("data")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out")
    p.add_argument("--flags", default="", help="dcn options for tune and compare alike")
    p.add_argument("--space", help="a space file for tune (default: dcn's default space)")
    p = sub.add_parser("logs")
    p.add_argument("--data", action="append", required=True, help="FILE:LABEL")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=30)
    p = sub.add_parser("jobs")
    p.add_argument("data")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--flags", default="", help="more dcn tune options, as one string")
    p = sub.add_parser("kill")
    p.add_argument("data")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--flags", default="", help="more dcn tune options, as one string")
    args = parser.parse_args()
    {"movielens": movielens, "logs": logs, "jobs": jobs, "kill": kill}[args.what](args)


if __name__ == "__main__":
    main()
