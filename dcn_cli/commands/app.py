"""The ``dcn`` Typer app and what every command shares: the checks that run before
it, and one ``Error:`` line (exit code 1) for a user's mistake.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from typing import Annotated

import typer

from dcn_cli import __version__, environment, settings
from dcn_cli.errors import DcnError, from_pipeline

app = typer.Typer(
    name="dcn",
    help="Train and inspect Deep & Cross Network (DCN, DCN-V2) models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


OUT_OF_MEMORY = "out of memory; try less data, a smaller model or a smaller --batch-size"


def user_errors(command):
    """Turn a :class:`DcnError` into one line on stderr and exit code 1.

    Every option with an entry in :data:`dcn_cli.settings.SETTINGS` is checked
    first, and so are the environment variables dcn reads, before the command
    imports TensorFlow or reads a row. A
    DcnError raised inside ``tf.data`` (a data file changed mid-run) comes out
    as itself, wherever in the run it happens. So do the errors of the machine
    rather than of dcn: a failed read or write (disk full, permission denied)
    and running out of memory.

    Ctrl-C ends with one line and exit code 130, not a traceback, and SIGTERM
    (what a scheduler or ``kill`` sends) the same way with 143; either way the
    command's own clean-up runs, files being written are left whole and a
    checkpoint keeps its last saved state.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        from_pipeline()  # nothing from an earlier command run in this process
        try:
            settings.check_given(kwargs)
            environment.check()
            return command(*args, **kwargs)
        except DcnError as err:
            typer.echo(f"Error: {err}", err=True)
            raise typer.Exit(1) from None
        except BrokenPipeError:  # the reader of our output left (``dcn predict ... | head``)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as err:  # disk full, permission denied, a path under a plain file
            where = f"{err.filename}: " if err.filename else ""
            typer.echo(f"Error: {where}{err.strerror or err}", err=True)
            raise typer.Exit(1) from None
        except MemoryError:
            typer.echo(f"Error: {OUT_OF_MEMORY}", err=True)
            raise typer.Exit(1) from None
        except Exception as err:
            inside = from_pipeline()  # what a reader raised inside tf.data, carried out by TF
            if inside is not None:
                typer.echo(f"Error: {inside}", err=True)
                raise typer.Exit(1) from None
            interrupt = _interrupt_inside(err)
            if interrupt is not None:  # Keras re-raised a Ctrl-C as its own error
                typer.echo("Interrupted.", err=True)
                raise typer.Exit(143 if isinstance(interrupt, _Terminated) else 130) from None
            if type(err).__name__ != "ResourceExhaustedError":  # TensorFlow's out of memory
                raise
            typer.echo(f"Error: {OUT_OF_MEMORY}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as err:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(143 if isinstance(err, _Terminated) else 130) from None

    return wrapper


def _interrupt_inside(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) an exception was raised while handling, if any."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that clean-up runs as for Ctrl-C."""


def _terminate(signum, frame):
    raise _Terminated()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dcn {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train and inspect Deep & Cross Network (DCN, DCN-V2) models."""
