"""dcn on real click logs against logistic regression and LightGBM, on the same splits.

    pip install -e '.[bench]'     # scikit-learn and LightGBM, for the baselines only
    python benchmarks/real_logs.py --data criteo.csv:label --data avazu.csv:click \
        [--seeds 5] [--variant NAME:OPTIONS ...]

Each ``--data`` is a CSV file and its label column (public samples such as
the first 10,000 rows of Criteo's Kaggle ``train.txt`` or of Avazu's
``train.csv``; their licences forbid redistribution, so none ships here).

For each seed s (0..N-1) every model sees the same split: dcn's own seeded
80/20 row split with split seed s. The models:

- ``dcn``: ``dcn train --data FILE --label COL`` with the defaults, in process
  (roles inferred, id columns ignored as dcn decides), init seed s;
- each ``--variant NAME:OPTIONS``: the same with dcn options, e.g.
  ``--variant 'mc1:--min-count 1'`` or ``--variant 'nopat:--patience 0'``;
- ``logreg``: scikit-learn's LogisticRegression (C=0.1) over one-hot
  features, every feature column read as a category, values seen once in
  training grouped into one;
- ``lightgbm``: LightGBM with its defaults, numerical columns as numbers and
  categorical ones as native categories.

Columns dcn ignores (ids) are left out of the baselines too. Prints each
model's test AUC and logloss per seed, then mean and spread (standard
deviation over seeds), and the trainable parameters of dcn's models.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcn_cli.data.sources import DataSpec  # noqa: E402


class SplitSpec(DataSpec):
    """A DataSpec whose rows split with a chosen seed (``dcn train`` always uses 42)."""

    split_seed = 42

    def open(self):
        table = super().open()
        table.schema.split.seed = self.split_seed
        return table


def options_of(text: str) -> dict[str, str]:
    """``--min-count 3 --patience 2`` -> ``{"min_count": "3", "patience": "2"}``."""
    words = shlex.split(text)
    return {words[i][2:].replace("-", "_"): words[i + 1] for i in range(0, len(words) - 1, 2)}


DATA_KEYS = ("categorical", "numerical", "ignore", "min_count", "validation", "hash_buckets")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "optimizer", "patience", "weight_decay")


def run_dcn(path: str, label: str | None, seed: int, given: dict[str, str]) -> dict[str, float]:
    """``dcn train`` with ``given`` options on split seed ``seed``; its test metrics."""
    from typer.testing import CliRunner

    from dcn_cli.commands import app
    from dcn_cli.data import sources

    with tempfile.TemporaryDirectory() as out:
        argv = ["train", "--data", path, "--seed", str(seed), "--out", out]
        argv += ["--label", label] if label else []
        for key, value in given.items():
            argv += [f"--{key.replace('_', '-')}", value]
        argv += ["--json"]
        original = sources.DataSpec
        SplitSpec.split_seed = seed
        sources.DataSpec = SplitSpec  # the command builds its DataSpec from this module
        try:
            result = CliRunner().invoke(app, argv, catch_exceptions=False)
        finally:
            sources.DataSpec = original
        if result.exit_code != 0:
            raise SystemExit(f"dcn {' '.join(argv)} failed:\n{result.output}")
        import json

        metrics = json.loads(result.stdout[result.stdout.index("{") :])
        config = json.loads((Path(out) / "config.json").read_text())
    metrics["params"] = sum(config["vocabulary_sizes"].values())
    return metrics


def baseline_arrays(path: str, label: str, seed: int):
    """Train and test columns for the baselines, split as dcn splits them."""
    spec = SplitSpec(path, label)
    SplitSpec.split_seed = seed
    table = spec.open()
    features = [c for c in table.schema.features]
    prepared = spec.prepare(table)
    return features, prepared.arrays("train"), prepared.arrays("test"), prepared.label


def logreg(features, train, test, label) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    def text(columns):
        return np.stack([columns[c.name].astype(str) for c in features], axis=1)

    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2)
    x_train = encoder.fit_transform(text(train))
    model = LogisticRegression(C=0.1, max_iter=2000).fit(x_train, train[label])
    return scores(test[label], model.predict_proba(encoder.transform(text(test)))[:, 1])


def lightgbm(features, train, test, label) -> dict[str, float]:
    import lightgbm as lgb

    codes: dict[str, dict] = {}

    def matrix(columns, fit: bool):
        out = []
        for c in features:
            values = columns[c.name]
            if c.role == "categorical":
                if fit:
                    codes[c.name] = {v: i for i, v in enumerate(dict.fromkeys(values.tolist()))}
                values = np.array([codes[c.name].get(v, -1) for v in values.tolist()], float)
                values[values < 0] = np.nan
            out.append(values.astype(float))
        return np.stack(out, axis=1)

    categorical = [i for i, c in enumerate(features) if c.role == "categorical"]
    model = lgb.LGBMClassifier(verbose=-1, random_state=0)
    model.fit(matrix(train, True), train[label], categorical_feature=categorical)
    return scores(test[label], model.predict_proba(matrix(test, False))[:, 1])


def scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    return {
        "auc": float(roc_auc_score(labels, probabilities)),
        "logloss": float(log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, help="FILE[:LABEL]")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--variant", action="append", default=[], help="NAME:OPTIONS")
    parser.add_argument("--no-baselines", action="store_true")
    args = parser.parse_args()
    variants = {"dcn": {}} | {
        v.split(":", 1)[0]: options_of(v.split(":", 1)[1]) for v in args.variant
    }
    for data in args.data:
        path, _, label = data.partition(":")
        table: dict[str, list[dict[str, float]]] = {}
        for seed in range(args.seeds):
            if not args.no_baselines and label:
                features, train, test, target = baseline_arrays(path, label, seed)
                table.setdefault("logreg", []).append(logreg(features, train, test, target))
                table.setdefault("lightgbm", []).append(lightgbm(features, train, test, target))
            for name, given in variants.items():
                table.setdefault(name, []).append(run_dcn(path, label, seed, given))
            first = next(iter(table.values()))[-1]
            metrics = ("auc", "logloss") if "auc" in first else ("rmse", "mae")
            line = "  ".join(f"{n} {r[-1][metrics[0]]:.4f}" for n, r in table.items())
            print(f"{Path(path).name} seed {seed}: {metrics[0]} {line}", flush=True)
        print(f"\n{Path(path).name}: test {' and '.join(metrics)}, {args.seeds} seeds (mean ± sd)")
        for name, results in table.items():
            values = [np.array([r[m] for r in results]) for m in metrics]
            params = f"  embedding rows {results[0]['params']}" if "params" in results[0] else ""
            print(
                f"  {name:12s} "
                + "   ".join(
                    f"{m} {v.mean():.4f} ± {v.std():.4f}"
                    for m, v in zip(metrics, values, strict=True)
                )
                + params,
                flush=True,
            )


if __name__ == "__main__":
    main()
