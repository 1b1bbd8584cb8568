"""Validation RMSE behind dcn's defaults (dcn_cli/settings.py), never the test split.

    python benchmarks/tune_defaults.py ML100K_DIR [--seeds 2]

Holds out 10% of MovieLens 100K's training rows as validation and trains the
stacked DCN under the tutorial's protocol and under dcn's defaults, printing
each setting's mean validation RMSE per epoch: its best epoch and its last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcn_cli import backend, settings  # noqa: E402

SETTINGS = {
    "tutorial protocol": dict(epochs=8, batch_size=8192, lr=0.01, embedding_l2=0.0, dropout=0.0),
    "dcn defaults": dict(
        epochs=settings.EPOCHS,
        batch_size=settings.BATCH_SIZE,
        lr=settings.LR,
        embedding_l2=settings.EMBEDDING_L2,
        dropout=settings.DROPOUT,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    keras = backend.load()
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.model.config import ModelConfig
    from dcn_cli.model.factory import build_model
    from dcn_cli.train.engine import Engine, Hook, compile_model
    from dcn_cli.train.run import TrainSettings, make_optimizer

    class Curve(Hook):
        def __init__(self):
            self.values = []

        def on_epoch_end(self, engine, epoch, logs):
            self.values.append(logs["val_rmse"])

    prepared = DataSpec(args.data, validation=0.1).prepare()
    for name, s in SETTINGS.items():
        config = ModelConfig(
            features=prepared.features,
            task="regression",
            arch="stacked",
            deep_layers=[192, 192],
            embedding_l2=s["embedding_l2"],
            dropout=s["dropout"],
        )
        settings = TrainSettings(epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"])
        curves = []
        for seed in range(args.seeds):
            keras.utils.set_random_seed(seed)
            model = build_model(config)
            compile_model(model, "regression", make_optimizer(settings))
            curve = Curve()
            engine = Engine(model, config, prepared, settings.batch_size)
            engine.fit(settings.epochs, seed, hooks=[curve], validate=True)
            curves.append(curve.values)
        mean = np.mean(curves, axis=0)
        print(
            f"{name:18s} {s}: best validation RMSE {mean.min():.4f} at epoch "
            f"{mean.argmin() + 1}, last {mean[-1]:.4f} (mean of {args.seeds} seeds)",
            flush=True,
        )


if __name__ == "__main__":
    main()
