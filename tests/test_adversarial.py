"""Strange files, bad options, damaged checkpoints: one `Error:` line, or a documented handling.

Each case of the table below sets up what a user might have (files in the
working directory) and runs one command through the CLI. It must end with exit
code 1 and exactly one line on stderr, ``Error: ...`` with the given words, no
traceback, and nothing written. The cases are grouped as in the issue that
asked for them: NaN and infinity, ordinary CSVs, tracebacks that were, and
checkpoints.
"""

import errno
import gzip
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dcn_cli.commands import app
from dcn_cli.data import movielens
from dcn_cli.data.generate import generate
from dcn_cli.data.sources import open_table
from dcn_cli.errors import DcnError

FAST = ["--epochs", "1", "--batch-size", "64", "--deep-layers", "8", "--patience", "0"]
CSV = "a,b,y\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 4}\n" for i in range(40))


def write(name: str, text: str | bytes) -> list[str]:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return []


def csv_with(line: str) -> list[str]:
    """CSV with ``line`` as its row 3 (file line 4)."""
    rows = CSV.splitlines()
    write("t.csv", "\n".join([*rows[:3], line, *rows[3:]]) + "\n")
    return ["train", "--data", "t.csv", "--label", "y", *FAST]


def gz(text: str) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
        handle.write(text.encode())
    return buffer.getvalue()


def schema_dir(**changes) -> list[str]:
    schema = {
        "columns": [{"name": "a", "role": "numerical"}, {"name": "y", "role": "label"}],
        "files": ["data.csv"],
        **changes,
    }
    write("d/schema.json", json.dumps(schema))
    write("d/data.csv", "a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    return ["train", "--data", "d", *FAST]


def model_file(settings: str) -> list[str]:
    write("m.json", settings)
    write("t.csv", CSV)
    return ["compare", "m.json", "--runs", "1", "--data", "t.csv", "--label", "y", *FAST[:4]]


def damaged_zip() -> list[str]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("ml-100k/u.user", "1|24|M|technician|85711\n")
        archive.writestr("ml-100k/u.data", "1\t10\t4\t881250949\n" * 50)
    data = bytearray(buffer.getvalue())
    at = data.index(b"881250949")
    data[at] = ord("9")  # one changed byte: the member's CRC no longer matches
    write("ml-100k.zip", bytes(data))
    return ["train", "--data", "ml-100k.zip", *FAST]


BAD = [
    # -- NaN and infinity: in cells, labels and options; never a silent NaN
    # (given as numbers: dcn would otherwise read them as text, and warn; test_roles.py)
    (
        "nan-cell",
        lambda: [*csv_with("nan,1,2"), "--numerical", "a,b"],
        "t.csv:4: column 'a': 'nan' is not a finite",
    ),
    (
        "inf-cell",
        lambda: [*csv_with("1,-inf,2"), "--numerical", "a,b"],
        "t.csv:4: column 'b': '-inf' is not a finite",
    ),
    ("float32-overflow", lambda: csv_with("1e39,1,2"), "t.csv:4: column 'a': '1e39' is not a"),
    ("nan-label", lambda: csv_with("1,1,NaN"), "t.csv:4: column 'y': 'NaN' is not a finite"),
    ("inf-label", lambda: csv_with("1,1,inf"), "t.csv:4: column 'y': 'inf' is not a finite"),
    ("lr-inf", lambda: ["train", *FAST, "--lr", "inf"], "--lr must be a finite positive"),
    ("lr-nan", lambda: ["train", *FAST, "--lr", "nan"], "--lr must be a finite positive"),
    ("wd-nan", lambda: ["train", *FAST, "--weight-decay", "nan"], "--weight-decay must be a"),
    ("diag-nan", lambda: ["train", *FAST, "--diag-scale", "nan"], "--diag-scale must be a finite"),
    ("l2-nan", lambda: ["train", *FAST, "--embedding-l2", "nan"], "--embedding-l2 must be a"),
    ("dropout-nan", lambda: ["train", *FAST, "--dropout", "nan"], "dropout must be a finite"),
    (
        "validation-nan",
        lambda: ["train", *FAST, "--validation", "nan"],
        "--validation must be a finite",
    ),
    (
        "compare-dropout-inf",
        lambda: ["compare", "dnn", "--runs", "1", *FAST[:4], "--dropout", "inf"],
        "dropout must be a finite",
    ),
    (
        "noise-nan",
        lambda: ["generate", "poly", "--out", "p", "--noise", "nan"],
        "--noise must be a finite number",
    ),
    ("model-file-nan", lambda: model_file('{"diag_scale": NaN}'), "m.json: diag_scale must be a"),
    # -- ordinary CSVs that were rejected or crashed
    (
        "latin-1",
        lambda: (
            write("t.csv", CSV.encode() + "4,café,1\n".encode("latin-1"))
            or ["train", "--data", "t.csv", "--label", "y", *FAST]
        ),
        "t.csv:42:6: byte 0xe9 is not UTF-8",
    ),
    (
        "duplicate-label",
        lambda: write("t.csv", "y,a,y\n1,2,3\n") or ["train", "--data", "t.csv", "--label", "y"],
        "t.csv:1: column 'y' appears twice (columns 1 and 3)",
    ),
    (
        "nameless-column",
        lambda: write("t.csv", "a,,y\n1,2,3\n") or ["train", "--data", "t.csv", "--label", "y"],
        "t.csv:1: column 2 has no name",
    ),
    (
        "label-also-categorical",
        lambda: (
            write("t.csv", CSV)
            or ["train", "--data", "t.csv", "--label", "y", "--categorical", "y"]
        ),
        "t.csv: 'y' is the label; --categorical cannot name it",
    ),
    (
        "categorical-and-numerical",
        lambda: (
            write("t.csv", CSV)
            or [
                "train",
                "--data",
                "t.csv",
                "--label",
                "y",
                "--categorical",
                "a",
                "--numerical",
                "a",
            ]
        ),
        "t.csv: column 'a' is named by both --categorical and --numerical",
    ),
    (
        "label-only",
        lambda: write("t.csv", "y\n1\n2\n") or ["train", "--data", "t.csv", "--label", "y"],
        "t.csv: no feature columns besides the label 'y'",
    ),
    (
        "one-class",
        lambda: (
            write("t.csv", "a,y\n" + "1,1\n" * 50)
            or ["train", "--data", "t.csv", "--label", "y", "--task", "binary"]
        ),
        "t.csv: every training label is 1; a binary model needs rows of both classes",
    ),
    (
        "variance-overflow",
        lambda: (
            write("t.csv", "a,y\n" + "".join(f"{i}e30,{i % 2}\n" for i in range(40)))
            or ["train", "--data", "t.csv", "--label", "y", *FAST]
        ),
        "t.csv: column 'a': its values spread too far to normalise in float32",
    ),
    (
        "noise-overflow",
        lambda: ["generate", "poly", "--out", "p", "--noise", "1e39"],
        "--noise must be within float32's range (3.4e+38), got 1e+39",
    ),
    # -- tracebacks that were
    (
        "corrupt-gzip",
        lambda: (
            write("c.tsv.gz", b"\x1f\x8b\x08\x00garbage" * 20)
            or ["train", "--data", "criteo:c.tsv.gz", *FAST]
        ),
        "c.tsv.gz: damaged or truncated gzip file",
    ),
    (
        "truncated-gzip",
        lambda: (
            write("t.csv.gz", gz(CSV * 50)[:-40])
            or ["train", "--data", "t.csv.gz", "--label", "y", *FAST]
        ),
        "t.csv.gz: damaged or truncated gzip file",
    ),
    ("zip-bad-crc", damaged_zip, "ml-100k.zip:ml-100k/u.data: damaged zip member"),
    ("schema-columns-string", lambda: schema_dir(columns="a,y"), "columns must be a list"),
    ("schema-column-number", lambda: schema_dir(columns=[5]), "columns[0] must be an object"),
    ("schema-files-string", lambda: schema_dir(files="data.csv"), "files must be a list"),
    ("schema-split-test", lambda: schema_dir(split={"test": "0.2"}), "split.test must be a"),
    ("schema-header", lambda: schema_dir(header="yes"), "header must be true or false"),
    ("schema-delimiter", lambda: schema_dir(delimiter=";;"), "delimiter must be one character"),
    ("model-file-layers", lambda: model_file('{"deep_layers": 5}'), "m.json: deep_layers must be"),
    ("model-file-dropout", lambda: model_file('{"dropout": "0.3"}'), "m.json: dropout must be a"),
    ("model-file-float", lambda: model_file('{"cross_layers": 1.5}'), "m.json: cross_layers must"),
    ("model-file-list", lambda: model_file("[1, 2]"), "m.json: expected a JSON object"),
    ("seed-negative", lambda: ["train", *FAST, "--seed", "-1"], "--seed must be between 0 and"),
    ("seed-2-32", lambda: ["train", *FAST, "--seed", str(2**32)], "--seed must be between 0 and"),
    (
        "generate-seed",
        lambda: ["generate", "poly", "--out", "p", "--seed", "-1"],
        "--seed must be between 0 and",
    ),
    (
        "generate-rows-1e13",
        lambda: ["generate", "mixer", "--out", "p", "--rows", str(10**13)],
        "is too many for mixer",
    ),
    (
        "compare-two-rows",
        lambda: (
            write("t.csv", "a,y\n1,2\n3,4\n")
            or ["compare", "dcn", "--runs", "1", "--data", "t.csv", "--label", "y"]
        ),
        "t.csv: the test split is empty (2 rows in all)",
    ),
    (
        "out-under-a-file",
        lambda: write("f.txt", "x") or ["train", *FAST, "--out", "f.txt/ckpt"],
        "f.txt",
    ),
    (
        "tfds-unknown",
        lambda: ["train", "--data", "tfds:movielens/foo-ratings", *FAST],
        "tfds:movielens/foo-ratings: tensorflow-datasets does not know it",
    ),
    (
        "tfds-offline",
        lambda: ["train", "--data", "tfds:movielens/100k-ratings", *FAST],
        "cannot be reached (offline?)",
    ),
]


@pytest.mark.parametrize("setup, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_mistake_is_one_error_line(runner, tmp_path, monkeypatch, setup, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(movielens, "_online", lambda host, timeout=5.0: False)
    args = setup()
    before = _files(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    # Nothing written: no checkpoint, comparison or dataset appeared.
    assert _files(tmp_path) == before


def _files(root: Path) -> list[str]:
    """What the user has under ``root`` (the test's isolated home aside)."""
    return sorted(str(p) for p in root.rglob("*") if "home" not in p.relative_to(root).parts)


def test_training_that_diverges_says_so(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--optimizer", "sgd", "--lr", "1e30", "--arch", "cross", *FAST[:4]]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: training diverged: the loss is ")
    assert result.stderr.count("\n") == 1
    assert not Path("ckpt").exists()  # it failed before its first save: no run is left


# ------------------------------------------------------------ handled, not refused


def test_ordinary_csvs_train_explain_and_evaluate(runner, tmp_path, monkeypatch):
    """Column names are the user's: a byte-order mark (as Excel writes it) before the
    first, a space, non-ASCII letters, a slash, and the name of one of the model's own
    layers, all in one file."""
    monkeypatch.chdir(tmp_path)
    features = ["a", "a b", "größe", "x/y", "logit"]
    rows = "".join(f"{i % 5},{i % 3},{i % 7},{i % 2},{i % 4},{(i % 5) * 2}\n" for i in range(60))
    Path("t.csv").write_text("\ufeff" + ",".join(features) + ",y\n" + rows, encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", "t.csv", "--label", "y", "--json", *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads(Path("ckpt/config.json").read_text(encoding="utf-8"))
    assert [f["name"] for f in record["model"]["features"]] == features
    for command in (["evaluate", "ckpt", "--json"], ["explain", "ckpt", "--json"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["features"] == features


def test_long_fields_crlf_and_quoted_newlines_are_read(tmp_path):
    long = "x" * 200_000  # the csv module's default limit is 128 KiB
    notes = [long if i == 3 else "two\nlines" for i in range(9)]
    lines = ["a,note,y"] + [f'{i},"{note}",{i % 2}' for i, note in enumerate(notes)]
    path = tmp_path / "t.csv"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    (chunk,) = open_table(str(path), label="y", categorical="note").chunks()
    notes = chunk["note"].to_pylist()
    assert len(chunk["y"]) == 9 and notes[3] == long and notes[0] == "two\nlines"


def test_a_bad_row_found_while_evaluating_other_data(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text(CSV)
    assert runner.invoke(app, ["train", "--data", "t.csv", "--label", "y", *FAST]).exit_code == 0
    Path("other.csv").write_text("a,b,y\n1,2,3\n4,zz,1\n")
    result = runner.invoke(app, ["evaluate", "ckpt", "--data", "other.csv"])
    assert result.exit_code == 1, result.output
    assert result.stderr == "Error: other.csv:3: column 'b': 'zz' is not a number\n"


def test_a_full_disk_is_one_error_line(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = os.replace

    def full(src, dst):
        if str(dst).endswith("model.keras"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    result = runner.invoke(app, ["train", *FAST])
    assert result.exit_code == 1, result.output
    assert result.stderr == "Error: ckpt/model.keras: No space left on device\n"
    assert not list(Path("ckpt").glob(".model.keras*"))  # the temporary file went too


@pytest.fixture(scope="module")
def _trained_once(tmp_path_factory):
    home = tmp_path_factory.mktemp("trained")
    (home / "t.csv").write_text(CSV)
    args = ["train", "--data", str(home / "t.csv"), "--label", "y", "--out", str(home / "ckpt")]
    result = CliRunner().invoke(app, [*args, *FAST])
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def trained(_trained_once, tmp_path, monkeypatch):
    """A small stacked DCN trained on a CSV, as ``ckpt`` beside ``t.csv`` in the working
    directory: a copy of one trained once, its data path pointing at the copy's."""
    shutil.copytree(_trained_once, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    record = json.loads(Path("ckpt/config.json").read_text())
    record["data"]["data"] = str(Path("t.csv").absolute())
    Path("ckpt/config.json").write_text(json.dumps(record))
    return Path("ckpt")


def _damage_config(ckpt: Path, change) -> None:
    record = json.loads((ckpt / "config.json").read_text())
    change(record)
    (ckpt / "config.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    "damage, command, message",
    [
        (
            lambda r: r.pop("data"),
            "evaluate",
            "config.json: not a dcn checkpoint config (no 'data'",
        ),
        (lambda r: r.pop("feature_map"), "explain", None),  # derived from the model config
        (lambda r: r["data"].pop("schema"), "evaluate", "data.schema: expected a JSON object"),
        (lambda r: r["data"].update(data=5), "evaluate", "data: data must be str or None, got 5"),
        (lambda r: r["training"].update(epochs="2"), "train", "training: epochs must be int"),
        (lambda r: r["model"].update(deep_layers=[4]), "evaluate", "is not the model config.json"),
    ],
    ids=["no-data", "no-feature-map", "no-schema", "data-type", "training-type", "other-model"],
)
def test_a_damaged_checkpoint_is_one_error_line(runner, trained, damage, command, message):
    _damage_config(trained, damage)
    args = [command, "ckpt"] if command != "train" else ["train", "--resume", "--out", "ckpt"]
    result = runner.invoke(app, args)
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "header, flags",
    [
        ("a,b,y", ["--arch", "cross"]),  # another architecture: other weights
        # Same architecture and weight shapes, other feature names: the inputs tell.
        ("p,q,y", []),
    ],
    ids=["other-architecture", "same-shapes"],
)
def test_another_checkpoints_model_is_refused(runner, trained, header, flags):
    Path("o.csv").write_text(CSV.replace("a,b,y", header, 1))
    args = ["train", "--data", "o.csv", "--label", "y", "--out", "other", *FAST, *flags]
    assert runner.invoke(app, args).exit_code == 0
    (trained / "model.keras").write_bytes(Path("other/model.keras").read_bytes())
    for command in (["evaluate", "ckpt"], ["explain", "ckpt"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert "ckpt/model.keras: is not the model config.json describes" in result.stderr


def test_explain_out_naming_a_directory(runner, trained):
    Path("figs").mkdir()
    result = runner.invoke(app, ["explain", "ckpt", "--out", "figs"])
    assert result.exit_code == 1
    assert result.stderr == "Error: figs: explain draws a PNG; give --out a name ending in .png\n"
    Path("figs.png").mkdir()
    result = runner.invoke(app, ["explain", "ckpt", "--out", "figs.png"])
    assert result.exit_code == 1
    assert result.stderr == "Error: figs.png: is a directory; name a file to write\n"
    assert list(Path("figs").iterdir()) == list(Path("figs.png").iterdir()) == []


def test_tfds_fails_at_once_offline(monkeypatch, tmp_path):
    """No minutes of download retries: one look at the host, with a timeout, and an
    unreachable one is an error before tensorflow-datasets tries to download."""
    import socket

    import tensorflow_datasets as tfds

    looked = []

    def unreachable(address, timeout=None):
        looked.append((address, timeout))
        raise OSError("Network is unreachable")

    def download(*args, **kwargs):
        raise AssertionError("tfds.load ran: it retries for minutes offline")

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # nothing downloaded there
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(tfds, "load", download)
    with pytest.raises(DcnError, match="files.grouplens.org cannot be reached"):
        list(open_table("tfds:movielens/100k-ratings").chunks())
    assert looked == [(("files.grouplens.org", 443), 5.0)]


def test_matrix_of_odd_names_stays_distinct():
    from dcn_cli.model.factory import input_name, layer_name

    names = ["a b", "a_b", "a/b", "größe", "logit", "embed_x", "deep_0", "plain", "x.1"]
    assert len({layer_name(n) for n in names}) == len(names)
    assert layer_name("plain") == "plain" and input_name("a b") == "a b"
    assert "/" not in "".join(input_name(n) for n in names)
    assert np.all([layer_name(n).isascii() for n in names])


def test_a_truncated_model_is_one_error_line(runner, trained):
    model = trained / "model.keras"
    model.write_bytes(model.read_bytes()[:1000])
    result = runner.invoke(app, ["evaluate", "ckpt"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ckpt/model.keras: cannot load the model (")
    assert result.stderr.count("\n") == 1


def test_resume_on_data_that_changed_since(runner, trained):
    (trained / "metrics.json").unlink()  # interrupted, so resumable
    Path("t.csv").write_text(CSV + "99,1,2\n")  # a new value: the vocabulary would differ
    result = runner.invoke(app, ["train", "--resume", "--out", "ckpt", "--epochs", "2"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {Path('t.csv').absolute()}: the data changed since this run started (its "
        "features no longer match config.json); start a new run\n"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "two"], "Error: Invalid value for '--epochs'"),
        (["train", "--epoch", "3"], "Error: No such option: --epoch"),
        (["compare"], "Error: Missing argument"),
    ],
)
def test_usage_errors_end_with_what_was_wrong(runner, args, message):
    """The option parser's convention (usage, then the error, exit code 2), not a box."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(message), result.stderr
    assert result.stderr.startswith("Usage: dcn ")


def test_a_model_without_its_history_is_refused(runner, trained):
    (trained / "metrics.json").unlink()
    (trained / "history.csv").unlink()
    result = runner.invoke(app, ["train", "--resume", "--out", "ckpt", "--epochs", "3"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: ckpt/history.csv: missing, so the run's epochs are unknown; "
        "train afresh with --force\n"
    )


def test_out_of_memory_is_one_error_line(runner, tmp_path, monkeypatch):
    import tensorflow as tf

    from dcn_cli.train import run as training

    def too_big(*args):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "new_model", too_big)
    result = runner.invoke(app, ["train", *FAST])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: out of memory; try less data, a smaller model or a smaller --batch-size\n"
    )
    assert not Path("ckpt").exists()


def test_generate_lands_readable_and_replaces_only_a_dataset(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert (
            runner.invoke(app, ["generate", "poly", "--out", "d", "--rows", "300"]).exit_code == 0
        )
    finally:
        os.umask(old)
    assert Path("d").stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in Path("d").iterdir()} == {0o644}
    # A dataset directory is replaced; one that also holds other files is not.
    assert runner.invoke(app, ["generate", "poly", "--out", "d", "--rows", "200"]).exit_code == 0
    Path("d/notes.txt").write_text("mine")
    result = runner.invoke(app, ["generate", "poly", "--out", "d", "--rows", "100"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: d: exists and holds more than a dataset dcn generate wrote; choose another --out\n"
    )
    assert Path("d/notes.txt").read_text() == "mine"
    # Nor is a dataset directory of the user's own: rows and a schema.json it did not write.
    Path("mine").mkdir()
    Path("mine/rows.csv").write_text("x,y\n1,2\n")
    Path("mine/schema.json").write_text(
        json.dumps(
            {"columns": [{"name": "x", "role": "numerical"}, {"name": "y", "role": "label"}]}
            | {"files": ["rows.csv"]}
        )
    )
    result = runner.invoke(app, ["generate", "poly", "--out", "mine", "--rows", "100"])
    assert result.exit_code == 1 and "holds more than a dataset dcn generate wrote" in result.stderr
    assert Path("mine/rows.csv").read_text() == "x,y\n1,2\n"


def test_evaluate_a_shard_of_a_dataset_directory(runner, tmp_path, monkeypatch):
    """The label comes from the checkpoint: a CSV needs no --label here."""
    monkeypatch.chdir(tmp_path)
    generate("poly", tmp_path / "d", rows=400, function="f2")
    assert runner.invoke(app, ["train", "--data", "d", *FAST]).exit_code == 0
    result = runner.invoke(app, ["evaluate", "ckpt", "--data", "d/data-00000.csv", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 400


def test_explain_a_mixture_over_renamed_inputs(runner, tmp_path, monkeypatch):
    """Explaining DCN-Mix runs the model's front on test rows keyed by column name."""
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i % 5},{i % 3},{(i % 5) * 2}\n" for i in range(80))
    Path("t.csv").write_text("x/y,logit,label\n" + rows)
    args = ["train", "--data", "t.csv", "--label", "label", "--cross-type", "mix", *FAST]
    assert runner.invoke(app, [*args, "--projection-dim", "2"]).exit_code == 0
    result = runner.invoke(app, ["explain", "ckpt", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["features"] == ["x/y", "logit"]


def test_a_ctrl_c_that_keras_rewraps_is_still_an_interrupt(runner, tmp_path, monkeypatch):
    from dcn_cli.train import run as training

    def interrupted(*args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise TypeError("Exception encountered when calling Reshape.call()") from None

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "new_model", interrupted)
    result = runner.invoke(app, ["train", *FAST])
    assert result.exit_code == 130
    assert result.stderr == "Interrupted.\n"
