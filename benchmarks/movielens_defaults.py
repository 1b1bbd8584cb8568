"""MovieLens 100K: dcn's defaults, the 0.3 defaults, the tutorial's protocol, each with
and without the genres as a list feature.

    python benchmarks/movielens_defaults.py ML100K_DIR [--runs 5] [--setting NAME:FLAGS ...]

Each line is one ``dcn compare dcn --data ML100K_DIR --runs N ...`` (seeds
0..N-1 on the data's fixed 80/20 split), printed as the DCN's mean test
RMSE ± its standard deviation over the runs. ``--setting`` replaces the
list below with settings of one's own.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TUTORIAL = "--epochs 8 --batch-size 8192 --lr 0.01 --embedding-l2 0 --dropout 0 --patience 0"
SETTINGS = {
    "defaults": "",
    "defaults + genres": "--list movie_genres",
    "0.3 defaults (no early stopping, min-count 1)": "--patience 0 --min-count 1",
    "tutorial protocol": f"{TUTORIAL} --min-count 1",
    "tutorial protocol + genres": f"{TUTORIAL} --min-count 1 --list movie_genres",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--setting", action="append", default=[], help="NAME:FLAGS")
    args = parser.parse_args()
    settings = dict(s.split(":", 1) for s in args.setting) or SETTINGS
    from typer.testing import CliRunner

    from dcn_cli.commands import app

    print(f"| MovieLens 100K, DCN, {args.runs} runs | test RMSE | command flags |")
    print("| --- | --- | --- |")
    for name, flags in settings.items():
        with tempfile.TemporaryDirectory() as out:
            argv = ["compare", "dcn", "--data", args.data, "--runs", str(args.runs)]
            argv += [*shlex.split(flags), "--out", out, "--force", "--json"]
            result = CliRunner().invoke(app, argv, catch_exceptions=False)
            if result.exit_code != 0:
                raise SystemExit(f"dcn {' '.join(argv)} failed:\n{result.output}")
            model = json.loads(result.stdout)["models"][0]
        print(
            f"| {name} | {model['mean']:.4f} ± {model['std']:.4f} | `{flags or '(none)'}` |",
            flush=True,
        )


if __name__ == "__main__":
    main()
