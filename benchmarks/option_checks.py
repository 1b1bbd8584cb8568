"""How fast a bad option fails: ``dcn train --data BIG <bad value>``, wall time per case.

    python benchmarks/option_checks.py [--work DIR] [--rows 5000000] [--repeats 5]
                                       [--source DIR ...]

Each case runs ``dcn train`` in a fresh process on ``dcn generate ctr`` data
(``--rows`` rows under ``--work``, default ``/tmp/dcn-scale``, shared with the
other scale benchmarks; made when missing) with one bad value, and times the
whole process, from start to its ``Error:`` line, as a user waits for it.
``dcn --help`` is timed the same way as the floor. The data's preparation is
cached first (one pass per source tree), as in the report that asked for this:
the slow cases then took about 5 s; uncached they took a whole pass.

``--source`` names dcn source trees to compare (each a directory holding
``dcn_cli``; default this one), run side by side in the same loop, e.g. a
``git worktree`` of an older commit. Medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from use_scale import dataset  # noqa: E402 (the same data, made once)

CASES = [
    ["--projection-dim", "0"],
    ["--cross-layers", "0"],
    ["--embedding-dim", "0"],
    ["--num-experts", "0"],
    ["--hash-buckets", "C1=-5"],
    ["--deep-layers", "0,x"],
    ["--dropout", "1"],
    ["--epochs", "0"],
]

# The dcn command line of the source tree in argv[1] (its app moved in the layout of 0.4;
# ask for the old one by its file, or an editable install may offer the new one's parts).
DCN = """
import os, sys
sys.path.insert(0, sys.argv[1])
if os.path.exists(os.path.join(sys.argv[1], "dcn_cli", "cli.py")):
    from dcn_cli.cli import app
else:
    from dcn_cli.commands import app
sys.argv = ["dcn", *sys.argv[2:]]
app()
"""

WARM = """
import os, sys
sys.path.insert(0, sys.argv[1])
if os.path.exists(os.path.join(sys.argv[1], "dcn_cli", "cli.py")):
    from dcn_cli.data import DataSpec
else:
    from dcn_cli.data.sources import DataSpec
DataSpec(sys.argv[2]).prepare()
"""


def timed(source: Path, args: list[str], expect_error: bool) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", DCN, str(source), *args], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if expect_error and "Error: " not in done.stderr:
        raise SystemExit(f"{source} {args}: no Error line: {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dcn-scale"))
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--source", type=Path, action="append")
    args = parser.parse_args()
    sources = [s.resolve() for s in args.source or [ROOT]]
    args.work.mkdir(parents=True, exist_ok=True)
    data = dataset(args.work, args.rows)
    for source in sources:
        subprocess.run([sys.executable, "-c", WARM, str(source), str(data)], check=True)

    cases = {"dcn --help": (["--help"], False)}
    for case in CASES:
        cases[" ".join(case)] = (["train", "--data", str(data), *case], True)
    times: dict[tuple[str, Path], list[float]] = {}
    for _ in range(args.repeats):
        for name, (words, error) in cases.items():
            for source in sources:
                times.setdefault((name, source), []).append(timed(source, words, error))
    print(
        f"dcn train --data <{args.rows:,} rows, cached> with one bad value; medians of "
        f"{args.repeats} runs, seconds from process start to exit"
    )
    for name in cases:
        row = [f"{np.median(times[(name, s)]):6.2f} s" for s in sources]
        print(f"{name:24} " + "  ".join(row) + "   " + "  ".join(str(s) for s in sources))


if __name__ == "__main__":
    main()
