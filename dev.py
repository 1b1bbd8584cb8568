#!/usr/bin/env python3
"""Set up and run dcn with nothing but python3.

    python3 dev.py demo    # set up .venv, then run the main job on sample_data/
    python3 dev.py test    # set up .venv, then run the test suite
    python3 dev.py lint    # ruff (lint and format) and mypy on the package

Setting up makes a virtual environment in .venv and installs the package
(editable) with its test tools; it is skipped when pyproject.toml has not
changed since the last install.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
STAMP = VENV / ".dcn-installed"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    if code:
        sys.exit(code)


def setup() -> None:
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[test]")
    STAMP.write_text(digest)


def dcn(*words: str) -> None:
    """Run the installed ``dcn`` with the space-separated words given."""
    run(BIN / "dcn", *" ".join(words).split())


def demo() -> None:
    # The tutorial's toy settings, on the mixer sample: Adagrad 0.4, small batches.
    toy = "--data sample_data/mixer --optimizer adagrad --lr 0.4 --batch-size 100"
    dcn("--help")
    # One cross layer, 16 parameters; then its metrics and its learned crosses.
    # (--force: a second demo replaces the first one's runs.)
    dcn("train", toy, "--arch cross --epochs 30 --out runs/mixer --force")
    dcn("evaluate runs/mixer")
    dcn("explain runs/mixer")  # bananas x cookbooks should come out on top
    dcn("compare cross dnn --runs 3", toy, "--epochs 10 --out runs/compare --force")
    # Criteo-shaped clicks: DCN (cross, then deep) on 13 numerical + 26 categorical columns.
    dcn(
        "train --data sample_data/ctr --out runs/ctr --force",
        "--epochs 3 --batch-size 256 --embedding-dim 8",
    )
    # Use it: score rows (one click probability per row, in order), and export it for serving.
    dcn("predict runs/ctr --data sample_data/ctr --out runs/ctr-predictions.csv --force")
    dcn("export runs/ctr --out runs/ctr-savedmodel --force")


def lint() -> None:
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy", "dcn_cli")


def test() -> None:
    # Two processes (pytest-xdist), one per core of the team's machines; the 15 slowest
    # tests close every run, so that a slow one stays visible.
    pytest = [BIN / "python", "-m", "pytest", "-q", "-n", "2", "--dist", "worksteal"]
    run(*pytest, "--durations=15", *sys.argv[2:])


def main() -> None:
    jobs = {"demo": demo, "test": test, "lint": lint}
    if len(sys.argv) < 2 or sys.argv[1] not in jobs:
        sys.exit(f"usage: python3 dev.py {{{','.join(jobs)}}} [pytest args]")
    setup()
    jobs[sys.argv[1]]()


if __name__ == "__main__":
    main()
