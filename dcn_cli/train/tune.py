"""``dcn tune``: a seeded Optuna search for the settings that fit a dataset best.

Each trial trains one model on the training rows (the engine of
:mod:`dcn_cli.train.engine`, with early stopping) and is scored on the
validation split; a trial that falls behind the others' median at an epoch is
pruned (Optuna's ``MedianPruner``, fed each epoch's validation metric). The
test split is touched once, at the end, when the best trial's settings train
the checkpoint ``OUT/best`` through ``dcn train``'s own function.

The study lives in a database: ``OUT/study.db`` (SQLite) unless ``--storage``
names a shared one, where several machines can work on one study (Optuna's
own way to distribute). A run that is stopped, killed or crashes loses only
its running trials: the same command continues the study. Trials that a dead
process left running are marked failed; those of this machine at once (their
process is gone), those of other machines when their heartbeat stops.
``--jobs N`` runs N worker processes here, each drawing trials from the study.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcn_cli import backend
from dcn_cli.data.sources import DataSpec, split_source
from dcn_cli.errors import DcnError, first_line
from dcn_cli.fileio import remove_leftovers, running
from dcn_cli.model import checkpoint
from dcn_cli.model.presets import PRESETS
from dcn_cli.settings import (
    AUTO_VALIDATION,
    BATCH_SIZE,
    DEEP_LAYERS,
    DROPOUT,
    EMBEDDING_DIM,
    EMBEDDING_L2,
    EPOCHS,
    LR,
    OPTIMIZER,
    PATIENCE,
    WEIGHT_DECAY,
)
from dcn_cli.train.metrics import HIGHER_IS_BETTER, check_metric
from dcn_cli.train.space import Param, describe, split_settings

STUDY = "dcn-tune"
HEARTBEAT_SECONDS = 20  # a running trial's heartbeat; one silent for GRACE_SECONDS is dead
GRACE_SECONDS = 120
STARTUP = 8  # trials drawn at random before TPE models the results
MAX_FAILURES = 5  # a worker whose trials fail this many times in a row stops the search
# The settings of a trial that neither the space nor a flag sets: dcn train's defaults.
BASE: dict[str, Any] = {
    "arch": "stacked",
    "deep_layers": DEEP_LAYERS,
    "dropout": DROPOUT,
    "embedding_dim": EMBEDDING_DIM,
    "embedding_l2": EMBEDDING_L2,
    "lr": LR,
    "batch_size": BATCH_SIZE,
    "optimizer": OPTIMIZER,
    "weight_decay": WEIGHT_DECAY,
}


@dataclass
class Search:
    """Everything one worker needs to run trials (it travels to ``--jobs`` processes)."""

    data: DataSpec
    params: list[Param]
    fixed: dict[str, Any]
    trials: int
    out: Path
    storage: str | None = None
    metric: str | None = None  # default: auc (binary), rmse (regression)
    group: str | None = None
    seed: int = 0
    epochs: int = EPOCHS
    patience: int = PATIENCE
    timeout: float | None = None
    jobs: int = 1
    identity: dict[str, Any] = field(default_factory=dict)  # what the study must match

    @property
    def url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"


# dcn train's settings, the first trial of a study wherever its space holds them: the
# search then ends no worse on the validation split than the defaults it set out to beat.
DEFAULTS: dict[str, Any] = {
    **BASE,
    **PRESETS["dcn"],
    "deep_layers": DEEP_LAYERS,  # as the space writes it
    "projection_dim": None,  # full rank
}


def first_trial(params: list[Param]) -> dict[str, Any]:
    """The defaults of the searched settings whose ranges hold them."""
    held = [p for p in params if p.name in DEFAULTS and p.holds(DEFAULTS[p.name])]
    return {p.name: DEFAULTS[p.name] for p in held}


def settings_of(search: Search, sampled: dict[str, Any]) -> dict[str, Any]:
    """A trial's whole settings: dcn train's defaults, the pins, then what it drew."""
    return {**BASE, **search.fixed, **sampled}


# ---------------------------------------------------------------- the study


def open_study(search: Search, sampler_seed: int | None = None, create: bool = False):
    """The study in ``search``'s storage: created (``create``) or loaded, and checked to be
    the search asked for: the same data, space and metric."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = search.url
    shown = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)  # no password in a message
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS, **kwargs
        )
    except (ImportError, ModuleNotFoundError) as err:
        raise DcnError(f"--storage {shown}: its database driver is not installed ({err})") from None
    except Exception as err:  # SQLAlchemy's errors: unreachable, refused, bad URL
        raise DcnError(f"--storage {shown}: cannot open it: {first_line(err)}") from None
    higher = HIGHER_IS_BETTER[search.identity["metric"]]
    direction = (
        optuna.study.StudyDirection.MAXIMIZE if higher else optuna.study.StudyDirection.MINIMIZE
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY,
        direction=direction,
        pruner=pruner,
        load_if_exists=True,
    )
    made = study.user_attrs.get("identity")
    if made is None:
        if not create:
            raise DcnError(f"{shown}: holds no dcn study")
        study.set_user_attr("identity", search.identity)
    elif made != search.identity:
        what = [k for k in search.identity if made.get(k) != search.identity[k]]
        raise DcnError(
            f"{shown}: its study was made with other settings ({', '.join(what)} differ); "
            "continue it with the same command, or start one in another --out (or --storage)"
        )
    # A seed of its own per worker and per start: a continued study must not draw its
    # first trials again (a sampler seeded alike repeats its random start).
    seed = (sampler_seed or 0) * 100_003 + len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=seed % 2**32, n_startup_trials=STARTUP)
    return study


def identity(search: Search, prepared) -> dict[str, Any]:
    """What a study's trials depend on, which a continued study must share."""
    # The data by its file's name, roles and rows: machines sharing a study (--storage)
    # may hold it at other paths.
    record = dataclasses.asdict(search.data)
    prefix, path = split_source(search.data.data)
    if path is not None:
        record["data"] = prefix + path.resolve().name
    return {
        "data": record,
        "features": [[f.name, f.kind] for f in prepared.features],
        "rows": prepared.rows,
        "task": prepared.task,
        "metric": search.metric,
        "group": search.group,
        "space": describe(search.params, search.fixed),
        "seed": search.seed,
        "epochs": search.epochs,
        "patience": search.patience,
    }


def fail_orphans(study) -> list[int]:
    """Mark failed the running trials of this machine whose process is gone (killed).
    Those of other machines fail when their heartbeat stops (Optuna's own rule). Optuna
    has no public call to end another process's trial, hence its storage's own."""
    import optuna

    here, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
        if host == here and isinstance(pid, int) and not running(pid):
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            failed.append(trial.number)
    return failed


def counted(study) -> int:
    """Trials that count toward ``--trials``: complete or pruned (failed ones do not)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


# ---------------------------------------------------------------- the trials


def prepare(search: Search, warn=None):
    """The data prepared once for every trial: a validation split is required."""
    data = search.data
    if not data.validation:
        data = dataclasses.replace(data, validation=AUTO_VALIDATION)
    table = data.open()
    prepared = data.prepare(table)
    for note in table.notes if warn is not None else []:
        warn(note)
    metric = search.metric or ("auc" if prepared.task == "binary" else "rmse")
    check_metric(metric, prepared.task, search.group)
    if search.group is not None and search.group not in {c.name for c in table.schema.columns}:
        raise DcnError(f"{table.name}: no column {search.group!r} to group rows by (--group)")
    return data, prepared, metric


def start(search: Search, worker: int = 0, warn=None):
    """The data prepared and the study opened (made, or checked to be this search's).
    Returns the study, the search as it runs (its data with the validation split, its
    metric) and the prepared data."""
    if search.jobs > 1:
        _share_cores(search.jobs)
    data, prepared, metric = prepare(search, warn)
    search = dataclasses.replace(search, data=data, metric=metric)
    search.identity = identity(search, prepared)
    study = open_study(search, sampler_seed=search.seed * 64 + worker, create=True)
    fail_orphans(study)
    first = first_trial(search.params)
    if worker == 0 and first and not _has_trial(study, first):
        study.enqueue_trial(first)  # again if the first try failed (a Ctrl-C in it)
    return study, search, prepared


def _has_trial(study, params: dict[str, Any]) -> bool:
    """Whether a trial with ``params`` is done, running or waiting (not failed)."""
    import optuna

    state = optuna.trial.TrialState
    alive = (state.COMPLETE, state.PRUNED, state.RUNNING, state.WAITING)
    return any(
        trial.system_attrs.get("fixed_params", trial.params) == params
        for trial in study.get_trials(deepcopy=False, states=alive)
    )


def run_trials(study, search: Search, prepared, on_trial=None) -> None:
    """Draw and run trials until the study counts ``search.trials`` (or the timeout, or
    :data:`MAX_FAILURES` failures in a row)."""
    import optuna

    if counted(study) >= search.trials:
        return
    failures: list[str] = []  # this worker's, since its last trial that did not fail

    def objective(trial) -> float:
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        sampled = {p.name: p.suggest(trial) for p in search.params}
        try:
            value = _train_trial(search, prepared, trial, settings_of(search, sampled))
        except optuna.TrialPruned:
            failures.clear()
            raise
        except Exception as err:  # the study goes on; the trial keeps why it failed
            if isinstance(err, DcnError):
                message = str(err)
            elif type(err).__name__ == "ResourceExhaustedError":  # TensorFlow's
                message = f"out of memory: {first_line(err)}"
            else:
                raise  # a bug: end the study with it
            trial.set_user_attr("error", message)
            failures.append(message)
            raise DcnError(message) from None
        failures.clear()
        return value

    def give_up(study, trial) -> None:
        if len(failures) >= MAX_FAILURES:
            study.stop()

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    callbacks: list[Any] = [optuna.study.MaxTrialsCallback(search.trials, states=states), give_up]
    if on_trial is not None:
        callbacks.append(lambda study, trial: on_trial(study, trial))
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are reported by dcn
    study.optimize(objective, timeout=search.timeout, callbacks=callbacks, catch=(DcnError,))
    if len(failures) >= MAX_FAILURES:
        raise DcnError(f"{len(failures)} trials in a row failed; the last: {failures[-1]}")


def _share_cores(jobs: int) -> None:
    """Each of ``jobs`` workers takes its share of the cores, not all of them."""
    backend.load()  # quietly, first
    import tensorflow as tf

    threads = max(1, (os.cpu_count() or 1) // jobs)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started in this process: it keeps its threads
        pass


def _train_trial(search: Search, prepared, trial, values: dict[str, Any]) -> float:
    keras = backend.load()
    import optuna

    from dcn_cli.model.config import ModelConfig
    from dcn_cli.train.engine import Engine, Hook
    from dcn_cli.train.hooks import EarlyStopping
    from dcn_cli.train.run import TrainSettings, new_model

    model_settings, training = split_settings(values)
    config = ModelConfig(features=prepared.features, task=prepared.task, **model_settings)
    settings = TrainSettings(
        epochs=search.epochs, seed=search.seed, patience=search.patience, **training
    )
    metric, group = search.metric, search.group

    def score(engine) -> float:
        results = engine.measure("validation", group) if group else engine.evaluate("validation")
        if metric not in results:
            raise DcnError(f"the validation split holds one label only; {metric} is undefined")
        if group:
            trial.set_user_attr("groups", int(results["groups"]))
        return float(results[metric])

    class Report(Hook):
        """Each epoch's validation metric to the pruner."""

        epochs = 0

        def on_epoch_end(self, engine, epoch: int, logs: dict[str, float]) -> None:
            self.epochs = epoch
            value = None if group else logs.get(f"val_{metric}")
            trial.report(score(engine) if value is None else value, epoch)
            if trial.should_prune():
                trial.set_user_attr("epochs", epoch)
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    keras.backend.clear_session()  # the last trial's graphs: a long study stays as fast
    model = new_model(config, settings)
    engine = Engine(model, config, prepared, settings.batch_size)
    stopping = EarlyStopping(settings.patience) if settings.patience else None
    report = Report()
    hooks = [*([stopping] if stopping else []), report]
    engine.fit(settings.epochs, settings.seed, hooks=hooks, validate=True)
    trial.set_user_attr("epochs", report.epochs)
    return score(engine)  # early stopping ended on the weights of the best validation loss


# ---------------------------------------------------------------- the run

OUTPUTS = (
    *("study.db", "trials.csv", "trials.json", "best.json", "best"),
    *("history.png", "importance.png"),
)


def claim(out: Path) -> None:
    """``out`` may hold a study to continue, but nothing else of the user's."""
    if out.exists() and not out.is_dir():
        raise DcnError(f"{out}: exists and is not a directory")
    if out.is_dir():
        for name in OUTPUTS:  # what a killed tune was writing
            remove_leftovers(out / name)
        ours = ("study.db-", *(f".{name}." for name in OUTPUTS))  # SQLite's, other writers'
        names = sorted(p.name for p in out.iterdir() if not p.name.startswith(ours))
        # A study's directory holds its database, or (--storage) a trials.json of dcn's.
        made = "study.db" in names or _is_ours(out / "trials.json")
        other = [name for name in names if name not in OUTPUTS or not made]
        if other:
            raise DcnError(
                f"{out}: holds files that are not a study's ({', '.join(other[:3])}); "
                "choose another --out"
            )
        best = out / "best"
        if best.exists() and not checkpoint.holds_run(best):
            raise DcnError(f"{best}: exists and is not a checkpoint; move it away")


def _is_ours(path: Path) -> bool:
    from dcn_cli.fileio import read_json

    try:
        table = read_json(path)
    except (DcnError, OSError):
        return False
    return isinstance(table, dict) and {"metric", "split", "trials"} <= set(table)


def few_groups(study, group: str | None) -> str | None:
    """A warning where gauc was scored on fewer than 2 groups of the validation split
    (then it is one group's AUC, not a mean over groups), or None."""
    counts = [t.user_attrs["groups"] for t in study.trials if "groups" in t.user_attrs]
    if not counts or min(counts) >= 2:
        return None
    return (
        f"the validation split holds {min(counts)} group(s) of --group {group} with both "
        "labels, so gauc is not a mean over groups; give a larger --validation or another "
        "--group"
    )


def tune(search: Search, on_trial=None, warn=None):
    """Run the search (this process is worker 0; ``search.jobs - 1`` more are spawned).

    ``on_trial(study, trial)`` hears each trial that ends, the other workers'
    included. Returns the study and the search as the trials ran it (its data
    with the validation split, its metric).
    """
    import multiprocessing

    claim(search.out)
    created = not search.out.exists()
    search.out.mkdir(parents=True, exist_ok=True)
    backend.load()  # quietly, before the workers start
    spawn = multiprocessing.get_context("spawn")
    helpers: list[Any] = []
    heard: set[int] = set()
    began = datetime.datetime.now()  # Optuna's clock: trials that ended before are old news

    def hear(study, _trial=None) -> None:
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished() and trial.number not in heard:
                heard.add(trial.number)
                old = trial.datetime_complete is not None and trial.datetime_complete < began
                if on_trial is not None and not old:
                    on_trial(study, trial)

    try:
        study, search, prepared = start(search, 0, warn)  # bad input: one error, no helper
        helpers = [spawn.Process(target=_helper, args=(search, i)) for i in range(1, search.jobs)]
        for process in helpers:
            process.start()
        run_trials(study, search, prepared, on_trial=hear)
        while any(p.is_alive() for p in helpers):
            time.sleep(1.0)
            hear(study)
        hear(study)
    except BaseException:
        for process in helpers:
            process.terminate()
        if created and not any(search.out.iterdir()):
            search.out.rmdir()  # a search that failed before its study began leaves nothing
        raise
    finally:
        for process in helpers:
            process.join()
    bad = [i for i, p in enumerate(helpers, start=1) if p.exitcode not in (0, None)]
    if bad and warn is not None:  # the study holds what they did; its outputs are written
        warn(f"tune worker(s) {', '.join(map(str, bad))} failed; see their errors above")
    few = few_groups(study, search.group)
    if few and warn is not None:
        warn(few)
    return study, search


def _helper(search: Search, worker: int) -> None:
    """A ``--jobs`` worker process: trials until the study has enough."""
    import sys

    try:
        backend.load()
        run_trials(*start(search, worker))
    except DcnError as err:
        print(f"Error: tune worker {worker}: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
