"""The tutorial's toy: one cross layer (16 parameters) against a 166k-parameter DNN.

    python benchmarks/toy_mixer.py [--epochs 100] [--seeds 5] [--standardise] [--no-dnn]

Mixer data (100,000 rows, seed 42), first 90% to train and last 10% to test,
Adagrad with learning rate 0.4, batch 1000, no shuffling, as in the
TensorFlow Recommenders DCN tutorial. Prints each model's test RMSE and
trainable parameter count; the cross network runs once per seed 0..N-1 and
the median is reported. The inputs are fed raw, as the tutorial does, or with
``--standardise`` scaled by the training rows' mean and variance inside the
model, as ``dcn`` does (docs/trust.md compares the two).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dcn_cli import backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5, help="cross-network seeds 0..N-1")
    parser.add_argument("--standardise", action="store_true", help="scale inputs in the model")
    parser.add_argument("--no-dnn", action="store_true", help="skip the 512-256-128 DNN")
    args = parser.parse_args()

    keras = backend.load()
    from dcn_cli.data.features import FeatureSpec
    from dcn_cli.data.synthetic import MIXER_FEATURES, mixer
    from dcn_cli.model.config import ModelConfig
    from dcn_cli.model.factory import build_model, count_trainable_params

    columns, y = mixer()
    split = 90_000
    train = {k: v[:split].astype("float32") for k, v in columns.items()}
    test = {k: v[split:].astype("float32") for k, v in columns.items()}
    features = [FeatureSpec(name, "numerical") for name in MIXER_FEATURES]
    if args.standardise:
        for feature in features:
            values = train[feature.name].astype("float64")
            feature.mean, feature.variance = float(values.mean()), float(values.var())

    def run(arch: str, deep: list[int], seed: int):
        keras.utils.set_random_seed(seed)
        model = build_model(
            ModelConfig(
                features=features, arch=arch, deep_layers=deep, dropout=0.0, embedding_l2=0.0
            )
        )
        model.compile(
            optimizer=keras.optimizers.Adagrad(0.4),
            loss="mse",
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )
        start = time.perf_counter()
        model.fit(
            train,
            y[:split].astype("float32"),
            batch_size=1000,
            epochs=args.epochs,
            shuffle=False,
            verbose=0,
        )
        seconds = time.perf_counter() - start
        rmse = model.evaluate(
            test, y[split:].astype("float32"), batch_size=1000, verbose=0, return_dict=True
        )["rmse"]
        return model, rmse, seconds

    rmses = []
    for seed in range(args.seeds):
        model, rmse, seconds = run("cross", [], seed)
        rmses.append(rmse)
        kernel = np.abs(model.get_layer("cross_network").cross_layers[0].effective_kernel())
        i, j = np.unravel_index(np.argmax(kernel), kernel.shape)
        print(
            f"CrossNet (1 layer) seed {seed}: RMSE {rmse:.3g}  params "
            f"{count_trainable_params(model)}  train {seconds:.1f} s  "
            f"strongest |W|: {MIXER_FEATURES[i]} x {MIXER_FEATURES[j]}"
        )
    print(f"CrossNet (1 layer) median RMSE over {args.seeds} seeds: {np.median(rmses):.3g}")
    if args.no_dnn:
        return
    model, rmse, seconds = run("deep", [512, 256, 128], 0)
    print(
        f"DeepNet (512,256,128) seed 0: RMSE {rmse:.4f}  params "
        f"{count_trainable_params(model):,}  train {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
