"""What a ``dcn tune`` study leaves in ``--out``, each file written whole.

- ``trials.csv`` and ``trials.json``: every trial, its state, validation
  value, epochs, seconds and settings;
- ``best.json``: the best trial's settings as a model file, which ``dcn train
  --config`` and ``dcn compare`` read (its training settings included);
- ``best/``: a checkpoint of those settings, trained by ``dcn train``'s own
  function on the same split and seed (this is where the test split is used,
  once);
- ``history.png`` and ``importance.png``: the value of each trial with the best
  so far, and each setting's importance (Optuna's PED-ANOVA evaluator).
"""

from __future__ import annotations

import csv
import io
import math
import socket
from pathlib import Path
from typing import Any

from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path, write_json, write_text
from dcn_cli.train.space import PARAMS, split_settings
from dcn_cli.train.tune import Search, settings_of


def trial_rows(study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, epochs, seconds and its settings."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = None
        if trial.datetime_start and trial.datetime_complete:
            seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        if value is None and trial.intermediate_values:  # a pruned trial: its last report
            value = trial.intermediate_values[max(trial.intermediate_values)]
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": value,
                "epochs": trial.user_attrs.get("epochs"),
                "seconds": seconds,
                **{name: trial.params[name] for name in PARAMS if name in trial.params},
            }
        )
    return rows


def best_settings(search: Search, study) -> dict[str, Any] | None:
    """The best complete trial's whole settings (``deep_layers`` as a list), or None."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    model, training = split_settings(settings_of(search, study.best_trial.params))
    return {**model, **training}


def write_outputs(search: Search, study, metric: str) -> list[Path]:
    """trials.csv, trials.json and the two figures; the paths written."""
    out = search.out
    rows = trial_rows(study)
    best = best_settings(search, study)
    summary = {
        "metric": metric,
        "direction": study.direction.name.lower(),
        "split": "validation",
        "best_trial": study.best_trial.number if best is not None else None,
        "best_value": study.best_value if best is not None else None,
        "best_settings": best,
        "trials": rows,
    }
    write_json(out / "trials.json", summary)
    columns = ["number", "state", "value", "epochs", "seconds"]
    columns += [p for p in PARAMS if any(p in row for row in rows)]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {k: ("" if row.get(k) is None else row.get(k)) for k in columns} for row in rows
    )
    write_text(out / "trials.csv", text.getvalue())
    return [out / "trials.csv", out / "trials.json", *_figures(study, rows, metric, out)]


def write_best(search: Search, study) -> list[Path]:
    """best.json, the best trial's settings as a model file; written after ``best/`` is
    trained, so that a run stopped while training it leaves the two in step."""
    best = best_settings(search, study)
    if best is None:
        return []
    write_json(search.out / "best.json", best)
    return [search.out / "best.json"]


def _figures(study, rows: list[dict[str, Any]], metric: str, out: Path) -> list[Path]:
    from dcn_cli.plots import importance_chart, tune_history

    files = []
    scored = [r for r in rows if r["value"] is not None and r["state"] == "complete"]
    if scored:
        with atomic_path(out / "history.png") as tmp:
            tune_history(rows, metric, study.direction.name.lower() == "maximize", tmp)
        files.append(out / "history.png")
    importances = importance(study)
    if importances:
        with atomic_path(out / "importance.png") as tmp:
            importance_chart(importances, metric, tmp)
        files.append(out / "importance.png")
    else:
        (out / "importance.png").unlink(missing_ok=True)  # an earlier run's, now unfounded
    return files


def importance(study) -> dict[str, float]:
    """Each searched setting's importance, as shares summing to 1 (Optuna's PED-ANOVA,
    which needs only numpy: fANOVA would need scikit-learn); empty where too few trials
    completed for it to tell the settings apart."""
    import warnings

    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            shares = dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
        except (RuntimeError, ValueError):  # one value in every trial, or one distribution
            return {}
    if any("will be equal" in str(w.message) for w in caught) or not any(shares.values()):
        return {}  # Optuna's own words for "too few trials": its shares would be made up
    return shares


def train_best(search: Search, study, progress=None, warn=None) -> dict[str, Any] | None:
    """Train ``best/`` with the best trial's settings (once per best trial) and return its
    test metrics; None when no trial completed."""
    from dcn_cli.fileio import read_json
    from dcn_cli.model import checkpoint
    from dcn_cli.train.run import TrainSettings, train

    best = best_settings(search, study)
    if best is None:
        failed = [t for t in study.trials if t.state.name == "FAIL" and "error" in t.user_attrs]
        if failed:
            raise DcnError(
                f"no trial completed; trial {failed[-1].number} failed: "
                f"{failed[-1].user_attrs['error']}"
            )
        return None
    out = search.out / "best"
    number = study.best_trial.number
    # Which trial this --out's best/ holds: a shared study serves several --out, on hosts.
    made = f"checkpoint of {socket.gethostname()}:{out.resolve()}"
    if study.user_attrs.get(made) == number and (out / checkpoint.METRICS).exists():
        return read_json(out / checkpoint.METRICS)
    model, training = split_settings(best)
    settings = TrainSettings(
        epochs=search.epochs, seed=search.seed, patience=search.patience, **training
    )
    if out.exists() and not checkpoint.holds_run(out):
        raise DcnError(f"{out}: exists and is not a checkpoint; move it away")
    result = train(model, search.data, settings, out, True, progress, warn=warn)
    study.set_user_attr(made, number)
    return result.metrics
