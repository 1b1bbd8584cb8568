"""Every option is checked against the settings table before any work: a bad value is one
``Error:`` line, before TensorFlow is imported and before any data is read."""

import json
import subprocess
import sys

import pytest

from dcn_cli import settings

MISSING = "no-such-dir/data.csv"  # read first, it would fail with another message
TRAIN = ["train", "--data", MISSING]
COMPARE = ["compare", "dcn", "--data", MISSING]
EXPLAIN = ["explain", "no-such-ckpt"]
BAD = [
    (["train", "--projection-dim", "0"], "--projection-dim must be a positive integer, got 0"),
    (["train", "--cross-layers", "0"], "--cross-layers must be a positive integer, got 0"),
    (["train", "--embedding-dim", "0"], "--embedding-dim must be a positive integer, got 0"),
    (["train", "--num-experts", "0"], "--num-experts must be a positive integer, got 0"),
    (["train", "--hash-buckets", "C1=-5"], "--hash-buckets for 'C1' must be a positive integer"),
    (["train", "--hash-buckets", "C1"], "--hash-buckets expects NAME=N pairs like zip=1000"),
    (["train", "--deep-layers", "0,x"], "--deep-layers must be comma-separated integers"),
    (["train", "--deep-layers", "64,0"], "--deep-layers must be positive integers, got 0"),
    (["train", "--deep-layers", ""], "arch 'stacked' needs at least one deep layer"),
    (["train", "--arch", "wide"], "--arch must be one of stacked, parallel, cross, deep; got"),
    (["train", "--cross-type", "full"], "--cross-type must be one of matrix, vector, mix"),
    (["train", "--task", "ranking"], "--task must be one of regression, binary; got 'ranking'"),
    (["train", "--precision", "fp16"], "--precision must be one of float32, mixed_bfloat16"),
    (["train", "--optimizer", "adamax"], "--optimizer must be one of adam, adamw, adagrad, sgd"),
    (["train", "--distribute", "all"], "--distribute must be one of auto, off, mirrored"),
    (["train", "--diag-scale", "-1"], "--diag-scale must be a finite number >= 0, got -1.0"),
    (["train", "--dropout", "1"], "--dropout must be a finite number in [0, 1), got 1.0"),
    (["train", "--embedding-l2", "nan"], "--embedding-l2 must be a finite number >= 0, got nan"),
    (["train", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["train", "--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["train", "--lr", "0"], "--lr must be a finite positive number, got 0.0"),
    (["train", "--lr", "1e39"], "--lr must be within float32's range (3.4e+38), got 1e+39"),
    (["train", "--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
    (["train", "--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    (["train", "--patience", "-1"], "--patience must be an integer >= 0, got -1"),
    (["train", "--validation", "1.5"], "--validation must be a finite number in [0, 1)"),
    (["train", "--min-count", "0"], "--min-count must be a positive integer, got 0"),
    (["train", "--list", "genres="], "--list: the separator of 'genres' is empty"),
    (["compare", "--pooling", "max"], "--pooling must be one of mean, sum; got 'max'"),
    (["compare", "--min-count", "-1"], "--min-count must be a positive integer, got -1"),
    (["train", "--workers", "0"], "--workers must be a positive integer, got 0"),
    (["train", "--workers", "2", "--distribute", "off"], "--distribute off cannot"),
    (["train", "--resume", "--force"], "--resume continues a run and --force replaces it"),
    (["compare", "--runs", "0"], "--runs must be a positive integer, got 0"),
    (["compare", "--metric", "mse"], "--metric must be one of auc, logloss, ne, calibration"),
    (["compare", "--metric", "gauc"], "--metric gauc needs --group COL"),
    (["tune", "--trials", "0"], "--trials must be a positive integer, got 0"),
    (["tune", "--timeout", "0"], "--timeout must be a finite positive number, got 0.0"),
    (["tune", "--jobs", "0"], "--jobs must be a positive integer, got 0"),
    (["tune", "--lr", "-1"], "--lr must be a finite positive number, got -1.0"),
    (["tune", "--metric", "gauc"], "--metric gauc needs --group COL"),
    (["compare", "--embedding-dim", "0"], "--embedding-dim must be a positive integer, got 0"),
    (["compare", "--dropout", "-0.1"], "--dropout must be a finite number in [0, 1)"),
    (["compare", "--lr", "inf"], "--lr must be a finite positive number, got inf"),
    (["explain", "--top", "0"], "--top must be a positive integer, got 0"),
    (["explain", "--layer", "-1"], "--layer must be an integer >= 0, got -1"),
    (["generate", "cube", "--out", "d"], "the dataset kind must be one of mixer, poly, ctr"),
    (["generate", "mixer", "--out", "d", "--rows", "0"], "--rows must be a positive integer"),
    (["generate", "poly", "--out", "d", "--function", "f9"], "--function must be one of f1, f2"),
    (["generate", "poly", "--out", "d", "--features", "0"], "--features must be a positive"),
    (["generate", "poly", "--out", "d", "--order", "1"], "--order must be an integer >= 2"),
    (["generate", "poly", "--out", "d", "--terms", "0"], "--terms must be a positive integer"),
    (["generate", "poly", "--out", "d", "--noise", "-1"], "--noise must be a finite number >= 0"),
    (["generate", "ctr", "--out", "d", "--vocab-size", "3"], "--vocab-size must be an integer"),
    (["generate", "ctr", "--out", "d", "--seed", "-2"], "--seed must be between 0 and"),
]
TUNE = ["tune", "--data", MISSING]
PLACES = {"train": TRAIN, "compare": COMPARE, "explain": EXPLAIN, "generate": [], "tune": TUNE}

# Runs every case in one fresh process, then reports whether TensorFlow was imported
# and whether any file of the cases' data or checkpoint was looked for.
SCRIPT = """
import json, sys
from typer.testing import CliRunner
from dcn_cli.commands import app

cases = json.loads(sys.argv[1])
runner = CliRunner()
results = [runner.invoke(app, args) for args in cases]
print(json.dumps({
    "results": [[r.exit_code, r.stderr] for r in results],
    "tensorflow": "tensorflow" in sys.modules,
    "pyarrow": "pyarrow" in sys.modules,
}))
"""


def _args(args: list[str]) -> list[str]:
    command, rest = args[0], args[1:]
    if command == "generate":
        return args
    return [*PLACES[command], *rest]


def _in_a_fresh_process(cases: list[list[str]], cwd) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    return _in_a_fresh_process([_args(args) for args, _ in BAD], tmp_path_factory.mktemp("o"))


@pytest.mark.parametrize("case", range(len(BAD)), ids=lambda i: " ".join(BAD[i][0]))
def test_a_bad_value_is_one_error_line(outcome, case):
    code, stderr = outcome["results"][case]
    assert code == 1, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert BAD[case][1] in stderr


@pytest.mark.parametrize("command", [["train"], ["compare", "dcn"]])
@pytest.mark.parametrize("flag", ["--label", "--ignore"])
def test_columns_without_data_are_an_error(runner, command, flag):
    """Without --data dcn trains on its built-in mixer, which has none of the user's columns."""
    from dcn_cli.commands import app

    result = runner.invoke(app, [*command, flag, "clicked"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {flag} names a column of --data, and no --data is given "
        "(without it dcn trains on its built-in mixer)\n"
    )


def test_data_that_is_not_there_fails_before_tensorflow(tmp_path):
    """Not an option's bound but its value all the same: a --data path that does not
    exist is one line before TensorFlow loads (the reader, pyarrow, is imported)."""
    cases = [["train", "--data", MISSING], ["compare", "dcn", "--data", MISSING]]
    outcome = _in_a_fresh_process(cases, tmp_path)
    for code, stderr in outcome["results"]:
        assert (code, stderr) == (1, f"Error: {MISSING}: no such file or directory\n")
    assert not outcome["tensorflow"]


def test_bad_values_fail_before_tensorflow_or_the_data_is_touched(outcome):
    """The cases name data and checkpoints that do not exist: each failed on its option
    first (the assertions above), and nothing imported TensorFlow or pyarrow."""
    assert not outcome["tensorflow"]
    assert not outcome["pyarrow"]


def test_every_setting_of_the_command_line_has_a_bad_case():
    from typer.main import get_command

    from dcn_cli.commands import app

    params = {p.name for c in get_command(app).commands.values() for p in c.params}
    words = {word for args, _ in BAD for word in args}
    tried = {word.lstrip("-").replace("-", "_") for word in words}
    tried |= {name for name in settings.SETTINGS if settings.flag(name) in words}  # --list
    untried = sorted((params & set(settings.SETTINGS)) - tried - {"kind"})
    assert not untried


def test_choices_in_help_come_from_the_settings_table(runner):
    from dcn_cli.commands import app

    result = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert "|".join(settings.ARCHS) in result.stdout
    assert "|".join(settings.OPTIMIZERS) in result.stdout
    assert "|".join(settings.STRATEGIES) in result.stdout
