"""The ``dcn`` command line: a Typer app of thin commands, one module each.

Each command parses its options and calls a plain function in the layers
below (data, model, train, inspect). Nothing here imports TensorFlow at module
level, so ``dcn --help`` answers at once, and every option is checked against
:data:`dcn_cli.settings.SETTINGS` before a command does any work.
"""

from dcn_cli.commands import (
    compare,
    describe,
    evaluate,
    explain,
    export,
    generate,
    predict,
    train,
    tune,
)
from dcn_cli.commands.app import app

# In the order --help lists them: make and look at data, train, use what was trained.
for module in (generate, describe, train, evaluate, compare, tune, explain, predict, export):
    app.command()(getattr(module, module.__name__.rpartition(".")[2]))

__all__ = ["app"]
