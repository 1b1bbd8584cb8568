"""The metrics click-model engineers read beside AUC and log loss.

- **Normalized entropy** (``ne``): the log loss over the entropy of the base rate
  (the mean label), He et al., "Practical Lessons from Predicting Clicks on Ads
  at Facebook", ADKDD 2014. 1 is what predicting the base rate scores; lower is
  better.
- **Calibration** (``calibration``): the mean prediction over the mean label.
  1 is calibrated; above 1 the model predicts too many clicks.
- **Group AUC** (``gauc``): the AUC within each group (a user, say) that holds
  both labels, averaged with each group weighted by its rows (by the sum of its
  rows' weights, where rows are weighted), Zhou et al., "Deep Interest Network
  for Click-Through Rate Prediction", KDD 2018. A model can rank users well and
  a user's items badly: AUC sees the first, gAUC the second.

All of them are weighted means where the rows have weights. The first two come
from sums and need no rows kept; ``gauc`` keeps each row's group, label and
prediction until the end.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.settings import HIGHER_IS_BETTER as HIGHER
from dcn_cli.settings import METRICS

# What each task reports, in order; ``gauc`` only with a group column.
REPORTED = {
    "binary": ("auc", "logloss", "ne", "calibration", "accuracy"),
    "regression": ("rmse", "mae"),
}
GROUPED = ("gauc",)
# Which way is better, for the metrics a search may rank by (calibration has no way).
HIGHER_IS_BETTER = {name: name in HIGHER for name in METRICS if name != "calibration"}
CHOICES = {
    "binary": ("auc", "logloss", "ne", "calibration", "accuracy", "gauc"),
    "regression": ("rmse", "mae"),
}


def check_group(metric: str | None, group: str | None, flag: str = "--metric") -> None:
    """``gauc`` comes with the column that groups the rows."""
    if metric == "gauc" and group is None:
        raise DcnError(f"{flag} gauc needs --group COL, the column that groups rows (a user id)")


def check_metric(metric: str, task: str, group: str | None, flag: str = "--metric") -> None:
    """``metric`` is one the task reports, and ``gauc`` comes with its group column."""
    if metric not in CHOICES[task]:
        raise DcnError(f"{flag} {metric}: a {task} model is measured by {', '.join(CHOICES[task])}")
    check_group(metric, group, flag)
    if group is not None and task != "binary":
        raise DcnError(f"--group {group}: group AUC is for binary labels; this task is {task}")


def entropy(rate: float) -> float:
    """The binary entropy, in nats, of a base rate strictly between 0 and 1."""
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def click_metrics(
    logloss: float, label_sum: float, prediction_sum: float, weight_sum: float
) -> dict[str, float]:
    """``ne`` and ``calibration`` from the weighted sums of labels and predictions.

    Rows of one label only have no base-rate entropy and no calibration: the
    figures are left out (never NaN).
    """
    if weight_sum <= 0 or label_sum <= 0 or label_sum >= weight_sum:
        return {}
    return {
        "ne": logloss / entropy(label_sum / weight_sum),
        "calibration": prediction_sum / label_sum,
    }


def group_auc(groups, labels, predictions, weights=None) -> tuple[float | None, int]:
    """The mean AUC over the groups that hold both labels, each group weighted by its
    rows (their total weight), and how many groups count.

    A group's AUC is the chance that a positive row outranks a negative one, each
    pair weighted by the product of their weights, ties counting half (the rank
    form, Mann-Whitney U, when every weight is 1). ``groups`` may be of any type
    NumPy can sort (ids or strings). Returns ``(None, 0)`` when no group holds
    both labels.
    """
    y = np.asarray(labels, dtype=np.float64).reshape(-1) > 0.5
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if len(p) == 0:
        return None, 0
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    g = g.reshape(-1)
    order = np.lexsort((p, g))
    g, y, p, w = g[order], y[order], p[order], w[order]
    count = int(g.max()) + 1
    # Runs of tied rows: the same group and prediction, in ascending order.
    new_run = np.r_[True, (g[1:] != g[:-1]) | (p[1:] != p[:-1])]
    run = np.cumsum(new_run) - 1
    run_group = g[new_run]
    positive = np.bincount(run, weights=w * y)
    negative = np.bincount(run, weights=w * ~y)
    below = np.cumsum(negative) - negative  # negative weight in the runs before each run...
    first_run = np.flatnonzero(np.r_[True, run_group[1:] != run_group[:-1]])
    below -= below[first_run][run_group]  # ...of its own group
    wins = np.bincount(run_group, weights=positive * (below + negative / 2), minlength=count)
    positives = np.bincount(g, weights=w * y, minlength=count)
    negatives = np.bincount(g, weights=w * ~y, minlength=count)
    both = (positives > 0) & (negatives > 0)
    if not both.any():
        return None, 0
    auc = wins[both] / (positives[both] * negatives[both])
    size = positives[both] + negatives[both]
    return float(np.sum(auc * size) / size.sum()), int(both.sum())


def reliability(labels, predictions, weights=None, bins: int = 10) -> dict[str, list[float]]:
    """Mean prediction and observed rate in ``bins`` bins of equal rows (by prediction).

    Bins of equal rows, not of equal width: click rates are small, and equal
    widths would put almost every row in the first bin.
    """
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    order = np.argsort(p, kind="stable")
    out: dict[str, list[float]] = {"predicted": [], "observed": [], "rows": []}
    for part in np.array_split(order, min(bins, len(order))):
        total = w[part].sum()
        if len(part) == 0 or total <= 0:
            continue
        out["predicted"].append(float(np.sum(p[part] * w[part]) / total))
        out["observed"].append(float(np.sum(y[part] * w[part]) / total))
        out["rows"].append(float(len(part)))
    return out


# ------------------------------------------------- measured over rows


def metric_names(task: str) -> tuple[str, ...]:
    return REPORTED[task]


def new_metrics(task: str) -> list:
    """The metrics dcn reports for ``task``, named as :func:`metric_names` says."""
    import keras

    if task == "binary":
        return [
            keras.metrics.AUC(name="auc"),
            keras.metrics.BinaryCrossentropy(name="logloss"),
            keras.metrics.BinaryAccuracy(name="accuracy"),
        ]
    return [
        keras.metrics.RootMeanSquaredError(name="rmse"),
        keras.metrics.MeanAbsoluteError(name="mae"),
    ]


def example_losses(task: str, y_true, y_pred):
    """The loss of each row: binary cross-entropy or squared error, as Keras computes them."""
    import keras

    if task == "binary":
        return keras.losses.binary_crossentropy(y_true, y_pred)
    return keras.losses.mean_squared_error(y_true, y_pred)


def evaluate_batches(predict, task: str, batches) -> dict[str, float]:
    """Mean loss and the task's metrics of ``predict`` over ``(x, y)`` or ``(x, y,
    weights)`` batches."""
    return evaluate_predictions(task, ((y, predict(x), *w) for x, y, *w in batches))


def evaluate_predictions(task: str, pairs, where: str = "these rows") -> dict[str, float]:
    """Mean loss and the task's metrics over ``(labels, predictions)`` pairs, ``(n, 1)``
    each, or ``(labels, predictions, weights)``: then every figure is a weighted mean."""
    import tensorflow as tf

    metrics = new_metrics(task)
    loss_sum, weight_sum, label_sum, prediction_sum, rows = 0.0, 0.0, 0.0, 0.0, 0
    for y, y_pred, *w in pairs:
        weights = tf.reshape(w[0], [-1]) if w else tf.ones([tf.shape(y)[0]])
        loss_sum += float(tf.reduce_sum(example_losses(task, y, y_pred) * weights))
        weight_sum += float(tf.reduce_sum(weights))
        label_sum += float(tf.reduce_sum(tf.reshape(tf.cast(y, tf.float32), [-1]) * weights))
        prediction_sum += float(tf.reduce_sum(tf.reshape(y_pred, [-1]) * weights))
        rows += int(y.shape[0])
        for metric in metrics:
            metric.update_state(y, y_pred, sample_weight=weights if w else None)
    if rows and not weight_sum:
        raise DcnError(f"{where}: the weights of its {rows} rows are all 0: nothing to measure")
    results = {m.name: float(m.result()) for m in metrics}
    if task == "binary":
        clicks = click_metrics(results["logloss"], label_sum, prediction_sum, weight_sum)
        if not clicks:  # one label only: Keras' AUC says 0, where no AUC exists
            del results["auc"]
        results.update(clicks)
    return {"loss": loss_sum / weight_sum if weight_sum else 0.0, **results, "rows": rows}


def summary(results: dict[str, Any], task: str) -> dict[str, float]:
    """The metrics of ``results``, without the loss, in the task's order (``auc``, ``ne``
    and ``calibration`` only where the rows hold both labels; ``gauc`` where measured)."""
    names = (*metric_names(task), "gauc", "groups")
    return {name: results[name] for name in names if name in results}


def measure(
    task: str,
    scored_rows,
    label: str,
    weight: str | None = None,
    group: str | None = None,
    where: str = "these rows",
    keep: bool = False,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Loss and metrics of ``(rows, predictions)`` pairs (from
    :func:`~dcn_cli.train.pipeline.scored`), with ``gauc`` and ``groups`` by the
    column ``group``.

    Returns the results and, with ``group`` or ``keep``, each row's ``label``,
    ``prediction`` and ``weight`` (and ``group``) as arrays.
    """
    import pyarrow as pa

    from dcn_cli.train.pipeline import labels_of, weights_of

    kept: dict[str, list[np.ndarray]] = {
        **{"group": [], "grouped": [], "label": [], "prediction": [], "weight": []}
    }

    def triples():
        for rows, predictions in scored_rows:
            y, w = labels_of(rows, label), weights_of(rows, weight)
            p = predictions.reshape(-1, 1).astype(np.float32)
            if group is not None:
                if group not in rows.column_names:
                    raise DcnError(f"{where}: no column {group!r} to group rows by (--group)")
                values = rows[group].cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False)
                kept["group"].append(values)
                kept["grouped"].append(values != "")  # an empty cell is in no group
            if group is not None or keep:
                kept["label"].append(y.reshape(-1))
                kept["prediction"].append(p.reshape(-1))
                kept["weight"].append(w)
            yield y, p, w

    results = evaluate_predictions(task, triples(), where)
    arrays = {name: np.concatenate(parts) for name, parts in kept.items() if parts}
    if group is not None and results["rows"]:
        at = arrays["grouped"]  # rows without a group are in none
        value, groups = group_auc(
            arrays["group"][at],
            arrays["label"][at],
            arrays["prediction"][at],
            arrays["weight"][at] if weight else None,
        )
        if value is None:
            raise DcnError(
                f"{where}: no group of --group {group} holds both labels, so group AUC is "
                "undefined; group by a coarser column"
            )
        results.update(gauc=value, groups=groups)
    return results, arrays
