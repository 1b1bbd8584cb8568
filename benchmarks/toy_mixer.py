"""The tutorial's toy: one cross layer (16 parameters) against a 166k-parameter DNN.

    python benchmarks/toy_mixer.py [--epochs 100]

Mixer data (100,000 rows, seed 42), first 90% to train and last 10% to test,
Adagrad with learning rate 0.4, batch 1000, as in the TensorFlow Recommenders
DCN tutorial. Prints each model's test RMSE and trainable parameter count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dcn_cli import backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    args = parser.parse_args()

    keras = backend.load()
    from dcn_cli.config import FeatureSpec, ModelConfig
    from dcn_cli.model import build_model, count_trainable_params
    from dcn_cli.synthetic import MIXER_FEATURES, mixer

    columns, y = mixer()
    split = 90_000
    train = {k: v[:split].astype("float32") for k, v in columns.items()}
    test = {k: v[split:].astype("float32") for k, v in columns.items()}
    features = [FeatureSpec(name, "numerical") for name in MIXER_FEATURES]

    for label, arch, deep in [
        ("CrossNet (1 layer)", "cross", []),
        ("DeepNet (512,256,128)", "deep", [512, 256, 128]),
    ]:
        keras.utils.set_random_seed(args.seed)
        model = build_model(ModelConfig(features=features, arch=arch, deep_layers=deep))
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
        print(
            f"{label:<22} RMSE {rmse:.4f}  params {count_trainable_params(model):>7,}"
            f"  train {seconds:5.1f} s"
        )
        if arch == "cross":
            kernel = np.abs(model.get_layer("cross_network").cross_layers[0].effective_kernel())
            i, j = np.unravel_index(np.argmax(kernel), kernel.shape)
            print(f"{'':<22} strongest |W| entry: {MIXER_FEATURES[i]} x {MIXER_FEATURES[j]}")


if __name__ == "__main__":
    main()
