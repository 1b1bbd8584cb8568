"""The command-line surface: help, version, module entry point, error reporting."""

import re
import subprocess
import sys

from dcn_cli import __version__
from dcn_cli.commands import app

COMMANDS = [
    "generate",
    "describe",
    "train",
    "evaluate",
    "compare",
    "tune",
    "explain",
    "predict",
    "export",
]


def test_help_lists_every_command(runner):
    assert [c.name or c.callback.__name__ for c in app.registered_commands] == COMMANDS
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    listed = re.findall(r"^  (\w+)  ", result.output.split("Commands:")[1], re.MULTILINE)
    assert listed == COMMANDS


def test_no_arguments_shows_help(runner):
    """The help, on stderr with the option parser's usage-error code (Click's convention)."""
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: dcn ")
    assert re.findall(r"^  (\w+)  ", result.stderr.split("Commands:")[1], re.MULTILINE) == COMMANDS


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"dcn {__version__}"


def test_module_entry_point_and_help_do_not_import_tensorflow():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['dcn', '--help']\n"
        "try:\n"
        "    runpy.run_module('dcn_cli', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('OK')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and result.stdout.rstrip().endswith("OK")


def test_python_dash_m_reports_version():
    result = subprocess.run(
        [sys.executable, "-m", "dcn_cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"dcn {__version__}"


def test_ctrl_c_is_one_line_and_exit_130(runner, monkeypatch):
    import dcn_cli.data.generate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dcn_cli.data.generate, "generate", interrupted)
    result = runner.invoke(app, ["generate", "mixer", "--out", "x"])
    assert result.exit_code == 130
    assert result.stderr == "Interrupted.\n"


def test_readme_command_lines_use_real_options(runner):
    """Every `dcn ...` line in the README names a command and options that exist."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    lines = [line.split("#")[0].strip() for line in readme.splitlines()]
    commands = [shlex.split(line) for line in lines if line.startswith("dcn ")]
    assert len(commands) >= 8
    for words in commands:
        name = words[1]
        help_text = runner.invoke(app, [name, "--help"], terminal_width=200).output
        assert "Usage" in help_text, f"README uses unknown command: {' '.join(words)}"
        for option in (w for w in words if w.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", help_text), (
                f"README uses {option}, which `dcn {name} --help` does not list"
            )
