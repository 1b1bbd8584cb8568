"""Training: what ``dcn train`` runs.

:func:`train` opens the data, learns the feature encodings from the training
split, builds the model through the one factory, trains it on the engine
(:mod:`dcn_cli.train.engine`) with the hooks of :mod:`dcn_cli.train.hooks` (a rich
progress bar; ``model.keras`` saved whole at most every 10 seconds and at the
end, so an interrupted run leaves a loadable model and ``--resume`` can
continue) and writes the checkpoint directory (see :mod:`dcn_cli.model.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcn_cli import backend
from dcn_cli.data.prepare import Prepared
from dcn_cli.data.sources import DataSpec
from dcn_cli.errors import DcnError
from dcn_cli.fileio import read_json
from dcn_cli.model import checkpoint
from dcn_cli.model.config import ModelConfig
from dcn_cli.settings import (
    AUTO_VALIDATION,
    BATCH_SIZE,
    EPOCHS,
    LR,
    OPTIMIZER,
    PATIENCE,
    WEIGHT_DECAY,
    check,
    flag,
    from_json,
)
from dcn_cli.train.distribute import cluster_shape, is_chief

PROGRESS_UPDATES = 20  # progress-bar updates per epoch (calls of the engine's step function)


@dataclass
class TrainSettings:
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    lr: float = LR
    optimizer: str = OPTIMIZER
    seed: int = 0
    patience: int | None = PATIENCE  # 0 or None: train every epoch
    weight_decay: float = WEIGHT_DECAY

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                check(f.name, value, flag(f.name))


def make_optimizer(settings: TrainSettings):
    from dcn_cli.model import optimizers

    return optimizers.make(settings.optimizer, settings.lr, settings.weight_decay)


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    model: Any  # None when a resumed run had finished already
    config: ModelConfig


def train(
    model_config: dict[str, Any],
    data: DataSpec,
    settings: TrainSettings,
    out: str | Path = "ckpt",
    force: bool = False,
    progress=None,
    tensorboard: bool = True,
    warn=None,
    distribute: str = "auto",
) -> TrainResult:
    """Train one model and write its checkpoint directory ``out``.

    ``progress`` is an engine hook that shows how training goes (the CLI's
    is :class:`dcn_cli.commands.render.TrainProgress`); by default nothing is printed.
    ``warn`` takes notes on the settings (a callable of one string).

    ``model_config`` holds the architecture settings of :class:`ModelConfig`
    except ``features``, which come from the data. ``out`` must not hold a
    run already, unless ``force`` (the old run is then replaced).
    ``distribute`` names the strategy (:mod:`dcn_cli.train.distribute`); on a
    cluster only the chief writes ``out``.
    """
    settings.validate()
    out = Path(out)
    table = data.open()  # a wrong --data fails here, before TensorFlow loads
    strategy = _strategy(distribute)
    chief = is_chief(strategy)
    if chief:
        checkpoint.claim(out, force)
    data, prepared, settings = prepare_to_train(data, table, settings, warn if chief else None)
    config = ModelConfig(features=prepared.features, task=prepared.task, **model_config)
    for note in config.warnings():
        if warn is not None and chief:
            warn(note)
    model = new_model(config, settings, strategy)  # before anything is written: it may not fit
    if not chief:
        return _fit(config, prepared, settings, None, progress, tensorboard, model, strategy)
    record = {
        "model": config.to_dict(),
        "training": dataclasses.asdict(settings),
        "data": {
            **data.to_record(out),
            "source": prepared.table.name,
            "rows": prepared.rows,
            "schema": prepared.schema.to_dict(),
        },
        "feature_map": config.feature_map(),
        "vocabulary_sizes": prepared.vocabulary_sizes(),
        "cluster": _run_shape(strategy, prepared),
        "versions": checkpoint.versions(),
    }
    if force and checkpoint.holds_run(out):
        checkpoint.clear_run(out)
    created, logs_before = not out.exists(), checkpoint.entries(out / checkpoint.LOGS)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.remove_temporary(out)
    checkpoint.save_config(out, record)
    try:
        return _fit(config, prepared, settings, out, progress, tensorboard, model, strategy)
    except BaseException:
        if not (out / checkpoint.MODEL).exists():
            # Failed (or stopped) before its first save: leave no run behind. Only
            # kill -9 leaves config.json alone, which --resume then starts afresh.
            checkpoint.clear_run(out, logs_before)
            if created and not any(out.iterdir()):
                out.rmdir()
        raise


def prepare_to_train(
    data: DataSpec, table, settings: TrainSettings, warn=None
) -> tuple[DataSpec, Prepared, TrainSettings]:
    """``table`` prepared for training with ``settings``: with early stopping and no
    --validation, 10% of train held out (none drawn: a warning, and no early stopping).
    The data's and the table's notes go to ``warn`` after the pass, so that a run that
    fails on its data shows one error line. Returns the data, prepared rows and settings
    as the run uses them."""
    automatic = bool(settings.patience) and not data.validation
    if automatic:
        data = dataclasses.replace(data, validation=AUTO_VALIDATION)
    prepared = data.prepare(table, validation_optional=automatic)
    for note in table.notes if warn is not None else []:
        warn(note)
    if automatic and not prepared.rows["validation"]:
        settings = dataclasses.replace(settings, patience=0)
        if warn is not None:
            warn(
                f"{table.name}: too few rows to hold out a validation split; early stopping is off"
            )
    return data, prepared, settings


def _strategy(name: str):
    """The tf.distribute strategy, created before any model or dataset, as it must be."""
    backend.load()
    from dcn_cli.train.distribute import make_strategy

    return make_strategy(name)


def new_model(config: ModelConfig, settings: TrainSettings, strategy=None):
    """The model ``config`` describes, with ``settings.seed``'s initial weights, compiled."""
    keras = backend.load()
    import tensorflow as tf

    from dcn_cli.model.factory import build_model
    from dcn_cli.train.engine import compile_model

    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(settings.seed)
        model = build_model(config)
        compile_model(model, config.task, make_optimizer(settings))
    return model


def resume(
    out: str | Path,
    given: dict[str, Any] | None = None,
    progress=None,
    tensorboard: bool = True,
    warn=None,
    distribute: str = "auto",
) -> TrainResult:
    """Continue the run in ``out`` with the settings saved in its config.json.

    ``given`` holds the settings the user named again (by their config.json
    keys, ``epochs`` to train for longer included). One that differs from the
    saved run's is an error, raised before anything is written. A run killed
    before its first save starts afresh with its saved settings. On a
    cluster every worker reads ``out`` (it must be on a shared file system)
    and only the chief writes it.
    """
    out = Path(out)
    record = checkpoint.load_record(out)
    where = out / checkpoint.CONFIG
    config = checkpoint.model_config(record, out)
    data = DataSpec.from_record(record, out)
    settings = from_json(TrainSettings, record["training"], f"{where}: training")
    history = checkpoint.read_history(out)
    _check_given(given or {}, record, where, epochs_done=len(history))
    if given and "epochs" in given:
        settings.epochs = given["epochs"]
    try:
        settings.validate()
    except DcnError as err:
        raise DcnError(f"{where}: training: {err}") from None
    if (out / checkpoint.METRICS).exists() and settings.epochs <= record["training"]["epochs"]:
        planned = record["training"]["epochs"]
        if warn is not None and len(history) < planned:  # early stopping ended it
            warn(
                f"{out}: early stopping ended the run after {len(history)} of its {planned} "
                "epochs; nothing to do (to train longer, start it again with --force and a "
                "larger --patience, or --patience 0)"
            )
        elif warn is not None:
            warn(
                f"{out}: the run finished already ({len(history)} epochs); nothing to do "
                "(--epochs N continues it to N epochs)"
            )
        metrics = read_json(out / checkpoint.METRICS)
        return TrainResult(metrics, history, None, config)
    strategy = _strategy(distribute)
    chief = is_chief(strategy)
    prepared = data.prepare()
    if prepared.features != config.features or prepared.task != config.task:
        raise DcnError(
            f"{data.data or 'the built-in mixer'}: the data changed since this run started "
            "(its features no longer match config.json); start a new run"
        )
    _check_shape(record.get("cluster"), _run_shape(strategy, prepared), where)
    if not (out / checkpoint.MODEL).exists():
        if warn is not None and chief:
            warn(f"{out}: no model was saved yet; starting the run afresh with its settings")
        model, history = new_model(config, settings, strategy), []
    else:
        # Dropout layers draw their seeds as the model loads: a stream of their own
        # per resumed epoch, so a resume is reproducible (though with dropout it
        # does not repeat the masks an unbroken run would have drawn).
        backend.load().utils.set_random_seed((settings.seed + len(history)) % 2**32)
        with strategy.scope():
            model = checkpoint.load_model(out, config)
    if not chief:
        return _fit(
            config, prepared, settings, None, progress, tensorboard, model, strategy, history, out
        )
    # Only now, with the model in hand, does the directory change.
    checkpoint.remove_temporary(out)
    (out / checkpoint.METRICS).unlink(missing_ok=True)  # describes an end this run moves past
    if settings.epochs != record["training"]["epochs"]:
        checkpoint.save_config(out, {**record, "training": dataclasses.asdict(settings)})
    return _fit(config, prepared, settings, out, progress, tensorboard, model, strategy, history)


def _run_shape(strategy, prepared: Prepared) -> dict[str, Any]:
    """What a run's epoch steps depend on, for config.json: its workers and replicas, and
    whether it streams (held in memory, the steps depend on neither)."""
    return {**cluster_shape(strategy), "streamed": not prepared.in_memory}


def _check_shape(saved: dict[str, Any] | None, now: dict[str, Any], where: Path) -> None:
    """A streamed run resumes on the workers and replicas it started on (dcn 0.3 saved none)."""
    if saved is None or saved == now or not (saved.get("streamed") or now["streamed"]):
        return

    def shape(s: dict[str, Any]) -> str:
        how = "streamed" if s.get("streamed") else "held in memory"
        return f"{s.get('workers')} worker(s), {s.get('replicas')} replica(s), data {how}"

    raise DcnError(
        f"{where}: the run started on {shape(saved)}, and now it would run on {shape(now)}; "
        "a streamed epoch's steps depend on these, so resume it as it started "
        f"(--workers {saved.get('workers')}, the same devices and DCN_MEMORY_BUDGET_MB)"
    )


def _check_given(
    given: dict[str, Any], record: dict[str, Any], where: Path, epochs_done: int
) -> None:
    """Settings named on a ``--resume`` command line must be the saved run's."""
    sections = {f.name: "training" for f in dataclasses.fields(TrainSettings)}
    sections.update({f.name: "data" for f in dataclasses.fields(DataSpec)})
    conflicts = []
    for key, value in given.items():
        saved = record[sections.get(key, "model")].get(key)
        if key == "epochs":
            if value < epochs_done:
                conflicts.append(f"--epochs {value} (the run has {epochs_done} epochs already)")
        elif value != saved and not _same_path(key, value, saved):
            flag = "--" + key.replace("_", "-")
            conflicts.append(f"{flag} {_show(value)} (the run has {_show(saved)})")
    if conflicts:
        raise DcnError(
            f"{where}: --resume takes every setting from the saved run, and "
            f"{'; '.join(conflicts)}; drop the flag, or start a new run"
        )


def _same_path(key: str, a: Any, b: Any) -> bool:
    return (
        key == "data"
        and isinstance(a, str)
        and isinstance(b, str)
        and (Path(a).resolve() == Path(b).resolve())
    )


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "''"
    return "none" if value is None else str(value)


def _fit(
    config: ModelConfig,
    prepared: Prepared,
    settings: TrainSettings,
    out: Path | None,
    progress,
    tensorboard: bool,
    model,
    strategy,
    history: list[dict[str, float]] | None = None,
    where: Path | None = None,
) -> TrainResult:
    """Train ``model`` from the epoch its history has reached to the end, then test and save it.

    ``out`` is None on a cluster's other workers: they train and write nothing
    (``where`` is then the run's directory, which they read).
    """
    where = out or where or Path(".")
    from dcn_cli.model.factory import count_trainable_params
    from dcn_cli.train import hooks
    from dcn_cli.train.distribute import barrier, lost_workers
    from dcn_cli.train.engine import Engine
    from dcn_cli.train.metrics import summary

    engine = Engine(model, config, prepared, settings.batch_size, strategy)
    history = list(history or [])
    if history:
        history = history[: _epochs_trained(model, engine.steps_per_epoch(), history, where)]
    done = len(history)
    hook_list: list[hooks.Hook] = []
    if settings.patience:
        hook_list.append(hooks.EarlyStopping(settings.patience))  # first: restores before saving
    saver = None
    if out is not None:
        saver = hooks.Saver(out, history, history[-1].get("seconds", 0.0) if history else 0.0)
        hook_list.append(saver)
        if progress is not None:
            hook_list.append(progress)  # after the saver: a failed save is an error, then no line
        if tensorboard:
            hook_list.append(hooks.TensorBoard(out / checkpoint.LOGS))
    with lost_workers(strategy):  # a worker died
        engine.fit(
            settings.epochs,
            settings.seed,
            first_epoch=done,
            hooks=hook_list,
            validate=prepared.rows["validation"] > 0,
            calls_per_epoch=PROGRESS_UPDATES,
        )
    if out is None or saver is None:
        barrier(strategy)  # stay until the chief has tested and saved the model
        return TrainResult({}, history, model, config)
    metrics: dict[str, Any] = summary(engine.evaluate("test"), config.task)
    if not all(math.isfinite(v) for v in metrics.values()):
        raise DcnError(f"training diverged: the test metrics are {metrics}; try a lower --lr")
    metrics.update(
        params=count_trainable_params(model),
        train_seconds=round(saver.train_seconds, 3),
        test_rows=prepared.rows["test"],
        epochs_run=len(history),
    )
    checkpoint.save_metrics(out, metrics)
    barrier(strategy)
    return TrainResult(metrics, history, model, config)


def _epochs_trained(model, steps_per_epoch: int, history, out: Path) -> int:
    """Whole epochs in a saved model, from its optimizer's step count.

    history.csv is saved just before model.keras, so a kill between the two
    leaves history one epoch ahead; the model's own count decides.
    """
    done = int(model.optimizer.iterations.numpy()) // steps_per_epoch
    if done > len(history):
        raise DcnError(
            f"{out / checkpoint.HISTORY}: lists {len(history)} epochs but the model has "
            f"trained {done}; train afresh with --force"
        )
    return done
