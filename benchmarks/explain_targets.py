"""The targets of ``dcn explain``: are its crosses stable across seeds, used by the model
(ablation), and which ranking, effect, flow or weight strength, tells the used ones?

    python benchmarks/explain_targets.py ctr [--rows 100000] [--seeds 5] [--ablate 1000]
    python benchmarks/explain_targets.py movielens ML100K_DIR [--seeds 5] [--ablate 1000]
    python benchmarks/explain_targets.py rows [--rows 20000] [--explain 50]

- ``ctr``: ``dcn generate ctr`` (three planted crosses: C1 x C2, C3 x I1, I2 x I3),
  ``dcn train`` with its defaults over ``--seeds`` seeds; ``dcn explain`` of all the
  runs with ``--top 3`` by each ranking (are the planted crosses in every run's top
  3?); then ``dcn explain CKPT --ablate K`` of each run (K 1000: every pair): the loss
  each planted cross costs against the most any unplanted pair costs, and for each
  ranking its Spearman correlation with the loss over the pairs ablated and how many
  of the ``--top`` costliest pairs its own top holds.
- ``movielens``: MovieLens 100K under the TensorFlow Recommenders tutorial's
  protocol (Adam 0.01, batch 8192, 8 epochs, no regularisation) over ``--seeds``
  seeds: each ranking's top-5 agreement across runs, and its agreement with the
  loss every pair costs.
- ``rows``: ``dcn explain CKPT --data FILE --row N`` for the first ``--explain`` rows
  of ``dcn generate ctr`` data, with one cross layer under the output (``--arch
  cross``: the exact split) and with dcn's default stacked model (integrated
  gradients): the largest gap between the parts' sum and the logit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TUTORIAL = "--epochs 8 --batch-size 8192 --lr 0.01 --embedding-l2 0 --dropout 0 --patience 0"
TUTORIAL += " --min-count 1"


def dcn(*argv: str) -> dict:
    from typer.testing import CliRunner

    from dcn_cli.commands import app

    result = CliRunner().invoke(app, [*argv, "--json"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"dcn {' '.join(argv)} failed:\n{result.output}")
    return json.loads(result.stdout[result.stdout.index("{") :])


def runs(data: str, tmp: Path, seeds: int, flags: list[str]) -> list[str]:
    ckpts = []
    for seed in range(seeds):
        ckpt = str(tmp / f"ck{seed}")
        dcn("train", "--data", data, "--out", ckpt, "--seed", str(seed), *flags)
        ckpts.append(ckpt)
    return ckpts


def agreement(ckpts: list[str], tmp: Path, k: int, rank_by: str) -> dict:
    figure = str(tmp / f"runs-{rank_by}.png")
    argv = ["--top", str(k), "--layer", "0", "--out", figure, "--rank-by", rank_by]
    return dcn("explain", *ckpts, *argv)["layers"][0]


def ablations(ckpts: list[str], k: int) -> list[dict]:
    return [dcn("explain", ckpt, "--ablate", str(k), "--top", "1")["ablation"] for ckpt in ckpts]


RANKINGS = ("effect", "flow", "strength")


def summary(name: str, values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return f"{name}: none"
    return (
        f"{name}: median {statistics.median(known):.2f} (min {min(known):.2f}, "
        f"max {max(known):.2f}) over {len(known)} runs"
    )


def stability(ckpts: list[str], tmp: Path, k: int, planted: set | None = None) -> None:
    """Each ranking's top k over the runs, and how far the runs agree on it."""
    for rank_by in RANKINGS:
        layer = agreement(ckpts, tmp, k, rank_by)
        print(f"cross layer 0 by {rank_by}, top {k} of {len(ckpts)} runs:")
        for row in layer["top"]:
            mark = ""
            if planted is not None:
                mark = (
                    " (planted)" if tuple(sorted(row["features"])) in planted else " (not planted)"
                )
            print(
                f"  {' x '.join(row['features'])}{mark}: {rank_by} {row['mean']:.4g} ± "
                f"{row['std']:.2g}, ranks {row['ranks']}, in every top {k}: {row['in_every_top']}"
            )
        overlap, spearman = layer["top_overlap"], layer["rank_correlation"]
        print(
            f"  {layer['in_every_top']} pairs in every top {k}; top-{k} overlap mean "
            f"{overlap['mean']:.2f} (min {overlap['min']:.2f}); Spearman between runs mean "
            f"{spearman['mean']:.2f} (min {spearman['min']:.2f})",
            flush=True,
        )


USED = 1e-4  # a pair whose ablation costs less log loss than this: within the noise


def agreement_with_loss(found: list[dict], k: int) -> None:
    """Per ranking, over the pairs ablated: Spearman with the loss each costs, the same
    over the pairs that cost more than :data:`USED` (most pairs cost nothing, and
    their order is noise), and how many of the k costliest pairs its top k holds."""
    from dcn_cli.inspect.explain import ranks

    for a in found:
        used = sum(r["loss_change"] > USED for r in a["pairs"])
        print(f"  {used} of {len(a['pairs'])} pairs cost more than {USED}", flush=True)
    for rank_by in RANKINGS:
        spearman = [a["rank_correlations"][rank_by] for a in found]
        hits, among_used = [], []
        for a in found:
            costly = {tuple(r["features"]) for r in a["pairs"] if r["loss_rank"] <= k}
            mine = {tuple(r["features"]) for r in a["pairs"] if r[f"{rank_by}_rank"] <= k}
            hits.append(len(costly & mine))
            used = [r for r in a["pairs"] if r["loss_change"] > USED]
            mine_values = ranks(np.array([r[rank_by] for r in used]))
            costs = ranks(np.array([r["loss_change"] for r in used]))
            among_used.append(float(np.corrcoef(mine_values, costs)[0, 1]))
        print(
            f"{rank_by}: {summary('Spearman with loss', spearman)}; "
            f"{summary(f'over the pairs costing more than {USED}', among_used)}; of the {k} "
            f"costliest pairs its top {k} holds {hits} (per run)",
            flush=True,
        )


def ctr(args) -> None:
    from dcn_cli.data.generate import generate

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = tmp / "ctr"
        schema = generate("ctr", data, rows=args.rows)
        planted = {tuple(sorted(c["features"])) for c in schema.crosses}
        ckpts = runs(str(data), tmp, args.seeds, [])
        print(f"{args.seeds} runs on {args.rows:,} rows")
        stability(ckpts, tmp, 3, planted)
        found = ablations(ckpts, args.ablate)
        for seed, ablation in enumerate(found):
            costs = {tuple(sorted(r["features"])): r["loss_change"] for r in ablation["pairs"]}
            unplanted = max(v for p, v in costs.items() if p not in planted)
            mine = {" x ".join(p): costs.get(p) for p in sorted(planted)}
            shown = ", ".join(
                f"{p} {'not ablated' if v is None else f'{v:+.4f}'}" for p, v in mine.items()
            )
            beats = all(v is not None and v > unplanted for v in mine.values())
            print(
                f"seed {seed}: {ablation['split']} loss {ablation['loss']:.4f}; planted cost "
                f"{shown}; most by an unplanted pair {unplanted:+.4f} ({len(costs)} ablated); "
                f"each planted costs more: {beats}",
                flush=True,
            )
        agreement_with_loss(found, args.top)


def movielens(args) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        ckpts = runs(args.data, tmp, args.seeds, TUTORIAL.split())
        print(f"MovieLens 100K, tutorial protocol, {args.seeds} runs")
        stability(ckpts, tmp, 5)
        found = ablations(ckpts, args.ablate)
        for seed, ablation in enumerate(found):
            print(
                f"seed {seed}: {ablation['split']} loss {ablation['loss']:.4f}, "
                f"{len(ablation['pairs'])} pairs ablated",
                flush=True,
            )
        agreement_with_loss(found, args.top)


def rows(args) -> None:
    from dcn_cli.data.generate import generate

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = tmp / "ctr"
        generate("ctr", data, rows=args.rows)
        first = sorted(data.glob("data-*.csv"))[0]
        for label, flags in (("--arch cross (exact)", ["--arch", "cross"]), ("stacked", [])):
            ckpt = str(tmp / label.split()[0].strip("-"))
            dcn("train", "--data", str(data), "--out", ckpt, *flags)
            gaps, methods = [], set()
            for n in range(1, args.explain + 1):
                got = dcn("explain", ckpt, "--data", str(first), "--row", str(n))
                gaps.append(got["check"]["gap"])
                methods.add(got["method"])
            print(
                f"{label}: {', '.join(sorted(methods))}; over rows 1-{args.explain} of "
                f"{first.name}, the parts miss the logit by at most {max(gaps):.2e} "
                f"(median {statistics.median(gaps):.2e})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("ctr")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ablate", type=int, default=1000, help="K (1000: every pair)")
    p.add_argument("--top", type=int, default=10, help="k of the costliest pairs")
    p = sub.add_parser("movielens")
    p.add_argument("data")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ablate", type=int, default=1000, help="K (1000: every pair)")
    p.add_argument("--top", type=int, default=5, help="k of the costliest pairs")
    p = sub.add_parser("rows")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--explain", type=int, default=50)
    args = parser.parse_args()
    {"ctr": ctr, "movielens": movielens, "rows": rows}[args.what](args)


if __name__ == "__main__":
    main()
