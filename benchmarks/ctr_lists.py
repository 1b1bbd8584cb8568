"""``dcn generate ctr --with-tags``: does DCN find the planted list cross, and how close
does it come to the Bayes-optimal AUC?

    python benchmarks/ctr_lists.py [--rows 300000] [--vocab-size 10000] [--seeds 1]

Generates the data (a list column ``tags`` of 0-4 tags per row, crossed with
I2; C1 x C2 and C3 x I1 as in plain ctr), trains ``dcn train`` with its
defaults, and prints the test AUC against the Bayes-optimal AUC of the same
rows (``dcn evaluate``) and where ``dcn explain`` ranks each planted cross.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def dcn(*argv: str) -> dict:
    from typer.testing import CliRunner

    from dcn_cli.commands import app

    result = CliRunner().invoke(app, [*argv, "--json"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"dcn {' '.join(argv)} failed:\n{result.output}")
    return json.loads(result.stdout[result.stdout.index("{") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--vocab-size", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    from dcn_cli.data.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "ctr"
        schema = generate("ctr", data, rows=args.rows, vocab_size=args.vocab_size, with_tags=True)
        planted = [tuple(sorted(c["features"])) for c in schema.crosses]
        for seed in range(args.seeds):
            ckpt = str(Path(tmp) / f"ck{seed}")
            dcn("train", "--data", str(data), "--out", ckpt, "--seed", str(seed))
            metrics = dcn("evaluate", ckpt)
            top = dcn("explain", ckpt, "--top", "1000", "--rank-by", "strength")["top"]
            ranks = {tuple(sorted(t["features"])): i + 1 for i, t in enumerate(top)}
            where = ", ".join(f"{' x '.join(p)} {ranks.get(p, '-')}" for p in planted)
            print(
                f"seed {seed}: test AUC {metrics['auc']:.4f}, Bayes-optimal "
                f"{metrics['bayes_auc']:.4f} (gap {metrics['bayes_auc'] - metrics['auc']:.4f}); "
                f"planted crosses ranked {where} of {len(top)} pairs",
                flush=True,
            )


if __name__ == "__main__":
    main()
