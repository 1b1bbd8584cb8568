"""What the commands print: tables and JSON on stdout, progress on stderr.

Nothing here trains or reads data, and nothing imports TensorFlow. Tables
and progress lines are never cut: outside a terminal (a log file, a pipe)
the console is as wide as the longest line, and a progress bar becomes a
plain line at each epoch (``dcn train``), or at each finished run and at
least every :data:`PLAIN_EVERY_SECONDS` (``dcn compare``). With ``--json``,
stdout holds the JSON document alone.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from typing import Any

PLAIN_EVERY_SECONDS = 10.0
WIDE = 250  # columns of a console that is not a terminal: wide enough not to cut a line


def console(stderr: bool = False):
    from rich.console import Console

    # No markup: a file name or a column name may hold [brackets].
    out = Console(stderr=stderr, markup=False)
    return out if out.is_terminal else Console(stderr=stderr, markup=False, width=WIDE)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2), flush=True)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else f"{value:,}"


def metrics(title: str, values: dict[str, Any], as_json: bool) -> None:
    """A metric per row, or the dict as JSON."""
    if as_json:
        print_json(values)
        return
    from rich.table import Table

    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, _number(value))
    titled(console(), title, table)


def titled(out, title: str, table) -> None:
    """A title above a table, on its own line: a table's own title wraps at its width."""
    out.print(title, highlight=False, soft_wrap=True)
    out.print(table)


def settings_line(result: dict[str, Any]) -> str:
    """The training settings a comparison used, in one line."""
    t = result["training"]
    return (
        f"{t['runs']} runs per model (seeds 0..{t['runs'] - 1}); {t['epochs']} epochs"
        + (f" at most (early stopping, patience {t['patience']})" if t.get("patience") else "")
        + ", "
        f"batch {t['batch_size']}, {t['optimizer']} lr {t['lr']:g}, weight decay "
        f"{t['weight_decay']:g}; precision {t.get('precision', 'float32')}"
    )


def comparison(result: dict[str, Any], as_json: bool, files: list) -> None:
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    metric, models = result["metric"], result["models"]
    table = Table(title=f"test {metric} on {result['data']} ({result['rows']['test']:,} test rows)")
    headers = ("model", f"{metric} mean ± std", "params", "s / run", "p vs " + models[0]["name"])
    for column in headers:
        table.add_column(column, justify="left" if column == "model" else "right")
    for m in models:
        p = "-" if m["p_value"] is None else f"{m['p_value']:.3g}"
        table.add_row(
            m["name"],
            f"{m['mean']:.4f} ± {m['std']:.4f}",
            f"{m['params']:,}",
            f"{m['seconds_per_run']:.1f}",
            p,
        )
    out = console()
    title = f"test {metric} on {result['data']} ({result['rows']['test']:,} test rows)"
    titled(out, title, table)
    out.print(settings_line(result), highlight=False, soft_wrap=True)
    for m in models:
        if m.get("training"):
            own = ", ".join(f"{k} {_setting(v)}" for k, v in m["training"].items())
            out.print(f"{m['name']} trains with its own {own}", highlight=False, soft_wrap=True)
    print(f"wrote {', '.join(str(f) for f in files)}")


class TuneProgress:
    """``dcn tune``'s progress: a line per finished trial, in a terminal and a log alike,
    and in a terminal a bar of the trials that count (complete or pruned)."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console(stderr=True)
        self.bar = Progress(
            TextColumn("trials"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            disable=not self.console.is_terminal,
            transient=True,
        )
        self.task = self.bar.add_task("", total=total)
        self.started = False

    def trial_done(self, study, trial) -> None:
        from dcn_cli.train.tune import counted

        if not self.started:
            self.bar.start()
            self.started = True
        state = trial.state.name.lower()
        metric = study.user_attrs["identity"]["metric"]
        epochs = trial.user_attrs.get("epochs")
        if state == "fail":
            text = f"failed: {trial.user_attrs.get('error', 'its process ended')}"
        else:
            value = trial.value
            if value is None and trial.intermediate_values:
                value = trial.intermediate_values[max(trial.intermediate_values)]
            text = f"{state}{f' after epoch {epochs}' if state == 'pruned' else ''}: "
            text += f"{metric} {value:.4f}" if value is not None else "no value"
        line = f"trial {trial.number} {text}"
        if trial.datetime_start and trial.datetime_complete:
            line += f" ({(trial.datetime_complete - trial.datetime_start).total_seconds():.1f} s)"
        try:
            line += f"; best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:  # no complete trial yet
            pass
        self.console.print(line, highlight=False, soft_wrap=True)
        self.bar.update(self.task, completed=counted(study))

    def stop(self) -> None:
        if self.started:
            self.bar.stop()


def _setting(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def tuned(search, study, test: dict[str, Any] | None, files: list, as_json: bool) -> None:
    """What ``dcn tune`` found: the best trial, its settings and its checkpoint's test
    metrics, or all of it as JSON."""
    from dcn_cli.train.study import best_settings
    from dcn_cli.train.tune import counted

    best = best_settings(search, study)
    result = {
        "metric": search.metric,
        "trials_counted": counted(study),
        "trials": len(study.trials),
        "best_trial": study.best_trial.number if best is not None else None,
        "best_validation": study.best_value if best is not None else None,
        "best_settings": best,
        "checkpoint": str(search.out / "best") if test is not None else None,
        "test_metrics": test,
        "files": [str(f) for f in files],
    }
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    out = console()
    if best is None:
        out.print(f"no trial completed in {len(study.trials)}; see {files[0]}", highlight=False)
        return
    table = Table()
    table.add_column("setting")
    table.add_column("value", justify="right")
    searched = {p.name for p in search.params}
    for key, value in best.items():
        shown = ",".join(map(str, value)) if isinstance(value, list) else _setting(value)
        table.add_row(key + ("" if key in searched else " (pinned or default)"), shown)
    titled(
        out,
        f"best of {result['trials_counted']} trials: trial {result['best_trial']}, validation "
        f"{search.metric} {result['best_validation']:.4f}",
        table,
    )
    if test is not None:
        metrics(f"test metrics of its checkpoint ({result['checkpoint']})", test, False)
    print(f"wrote {', '.join(str(f) for f in files)}, {search.out / 'best'}")
    again = data_flags(search.data)
    again += [f"--epochs {search.epochs} --patience {search.patience} --metric {search.metric}"]
    again += [f"--group {shlex.quote(search.group)}"] if search.group else []
    print(
        f"check it over 5 seeds: dcn compare dcn {shlex.quote(str(search.out / 'best.json'))} "
        f"--runs 5 {' '.join(again)}"
    )


def data_flags(spec) -> list[str]:
    """The options that name ``spec`` (a DataSpec) again, quoted for a shell; its
    ``validation`` is left out, as tune's split is not compare's."""
    default = type(spec)()
    flags = []
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        if field.name == "validation" or value is None or value == getattr(default, field.name):
            continue
        option = "--list" if field.name == "lists" else "--" + field.name.replace("_", "-")
        flags.append(f"{option} {shlex.quote(str(value))}")
    return flags


def warn(note: str) -> None:
    print(f"Warning: {note}", file=sys.stderr, flush=True)


class Ticker:
    """For a long command without a bar: ``ticker(rows)`` prints ``<what> <rows> rows`` on
    stderr, at most every :data:`PLAIN_EVERY_SECONDS`."""

    def __init__(self, what: str):
        self.what, self.last = what, time.monotonic()

    def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if now - self.last >= PLAIN_EVERY_SECONDS:
            print(f"{self.what} {rows:,} rows", file=sys.stderr, flush=True)
            self.last = now


def _show(logs: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items())


class TrainProgress:
    """An engine hook (:class:`dcn_cli.train.engine.Hook`) for ``dcn train``.

    In a terminal, a bar per epoch (steps, loss so far, rows per second).
    Each finished epoch leaves one line, there and in a log alike; in a log,
    a long epoch also gives a line at least every :data:`PLAIN_EVERY_SECONDS`.
    """

    def on_train_begin(self, engine, epochs: int, first_epoch: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console(stderr=True)
        self.plain = not self.console.is_terminal
        self.epochs, self.steps = epochs, engine.steps_per_epoch()
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}/" + str(epochs)),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            disable=self.plain,
            transient=True,
        )
        self.bar.start()
        self.last = time.monotonic()
        if first_epoch:
            self._line(f"resuming after epoch {first_epoch}/{epochs}")

    def on_epoch_begin(self, engine, epoch: int) -> None:
        self.task = self.bar.add_task("", total=self.steps, epoch=epoch, metrics="")
        self.epoch, self.rate = epoch, 0.0

    def on_steps(self, engine, done: int, loss: float, rows_per_second: float) -> None:
        self.rate = rows_per_second
        text = f"loss {loss:.4f}  {rows_per_second:,.0f} rows/s"
        self.bar.update(self.task, completed=done, metrics=text)
        if self.plain and done < self.steps and time.monotonic() - self.last >= PLAIN_EVERY_SECONDS:
            self._line(f"epoch {self.epoch}/{self.epochs}  step {done:,}/{self.steps:,}  {text}")

    def on_epoch_end(self, engine, epoch: int, logs: dict[str, float]) -> None:
        self.bar.remove_task(self.task)
        self._line(f"epoch {epoch}/{self.epochs}  {_show(logs)}  {self.rate:,.0f} rows/s")

    def on_train_end(self, engine, finished: bool) -> None:
        self.bar.stop()

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)
        self.last = time.monotonic()


class CompareProgress:
    """``dcn compare``'s progress: a bar of finished runs in a terminal; elsewhere a line
    per finished run, and a line at least every 10 s while a long run trains.

    Call :meth:`run_done` after each run; use it as an engine hook for the
    lines inside a run. The bar starts with the first finished run, so that an
    error in the data or the model list is the only line on stderr.
    """

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console(stderr=True)
        self.plain = not self.console.is_terminal
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            console=self.console,
            disable=self.plain,
            transient=True,
        )
        self.total, self.done, self.started = total, 0, False
        self.task = self.bar.add_task("training", total=total)
        self.last = time.monotonic()
        self.name, self.seed = "", 0

    def starting(self, name: str, seed: int) -> None:
        self.name, self.seed = name, seed

    def run_done(self, name: str, seed: int, metric: str, value: float, seconds: float) -> None:
        self.done += 1
        if not self.started:
            self.bar.start()
            self.started = True
        text = f"{name} seed {seed}: {metric} {value:.4f}"
        self.bar.update(self.task, advance=1, description=text)
        if self.plain:
            self._line(f"run {self.done}/{self.total}  {text}  ({seconds:.1f} s)")

    def stop(self) -> None:
        if self.started:
            self.bar.stop()

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)
        self.last = time.monotonic()

    # An engine hook, for the runs that take long.
    def on_train_begin(self, engine, epochs: int, first_epoch: int) -> None:
        self.epochs = epochs

    def on_epoch_begin(self, engine, epoch: int) -> None:
        self.epoch = epoch

    def on_steps(self, engine, done: int, loss: float, rows_per_second: float) -> None:
        if self.plain and time.monotonic() - self.last >= PLAIN_EVERY_SECONDS:
            self._line(
                f"run {self.done + 1}/{self.total}  {self.name} seed {self.seed}: epoch "
                f"{self.epoch}/{self.epochs}, step {done:,}, loss {loss:.4f}, "
                f"{rows_per_second:,.0f} rows/s"
            )

    def on_epoch_end(self, engine, epoch: int, logs: dict[str, float]) -> None:
        pass

    def on_train_end(self, engine, finished: bool) -> None:
        pass


def description(described: dict[str, Any], as_json: bool, written=None) -> None:
    """``dcn describe``'s columns: a table, or JSON; warnings also on stderr."""
    if as_json:
        print_json(described | {"schema_written": str(written) if written else None})
        return
    from rich.table import Table

    table = Table()
    for name in ("column", "role", "type", "distinct", "missing", "commonest values"):
        table.add_column(name, justify="right" if name in ("distinct", "missing") else "left")
    for column in described["columns"]:
        top = ", ".join(
            f"{t['value'] if t['value'] != '' else '(empty)'} ×{t['count']:,}"
            for t in column["top"]
        )
        table.add_row(
            column["name"],
            column["role"] + (" (!)" if column["warning"] else ""),
            f"{column['kind']} → {column['dtype']}" if column["dtype"] else column["kind"],
            f"{column['distinct']:,}",
            f"{column['missing']:.0%}" if column["missing"] else "",
            top,
        )
    task = f", task {described['task']}" if described["task"] else ""
    titled(
        console(),
        f"{described['source']}: first {described['rows_sampled']:,} rows{task}",
        table,
    )
    for note in described["warnings"]:
        warn(note)
    if written is not None:
        console().print(f"wrote {written}", highlight=False, soft_wrap=True)


def stopped_early(history: list[dict[str, float]], ran: int | None, epochs: int) -> None:
    """One line on stderr when early stopping ended a run before ``epochs``."""
    losses = [float(row["val_loss"]) for row in history if "val_loss" in row]
    if ran is None or ran >= epochs or not losses or len(losses) != len(history):
        return
    best = 1 + losses.index(min(losses))
    print(
        f"stopped early after epoch {ran} of {epochs}: no lower validation loss since "
        f"epoch {best}, whose weights the model keeps",
        file=sys.stderr,
        flush=True,
    )
