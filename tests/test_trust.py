"""Trust on the newer surfaces: export, Parquet, the preparation cache, streaming, the
environment, the files a killed command leaves. Each test failed on dcn 0.3.0."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dcn_cli.commands import app
from dcn_cli.data.generate import generate
from dcn_cli.train import engine

FAST = ["--epochs", "1", "--batch-size", "64", "--deep-layers", "8", "--embedding-dim", "2"]
FAST += ["--patience", "0"]  # early stopping has tests of its own (test_train.py)
# Text columns first, then numbers (each kind inferred from its values).
ODD = ["city name", "größe/x", "城市", "市", 'q"uote', "_lead", "a,b", "-dash", ".", "x y", "x_y"]


def one_line_error(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def write_odd_csv(path: Path, rows: int = 120) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*ODD, "y"])
        for i in range(rows):
            words = [rng.choice(["a", "b", "c"]) for _ in range(len(ODD) // 2)]
            numbers = rng.normal(size=len(ODD) - len(words)).round(3).tolist()
            writer.writerow([*words, *numbers, i % 2])


# ---------------------------------------------------------------- export


def test_signature_names_are_unique_and_valid_by_construction():
    from dcn_cli.model.export import signature_names

    # TensorFlow's op names are unique regardless of case: Age and age must differ so.
    features = [*ODD, "plain", "城", "城 ", "_", "__", "x_y_2", "Age", "age"]
    names = signature_names(features)
    assert len({n.lower() for n in names.values()}) == len(features)
    # A raw name equal to another's plain form plus its hash still gets its own.
    clash = names["x y"]
    names = signature_names([*features, clash])
    assert len(set(names.values())) == len(names) == len(features) + 1
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) for n in names.values())
    assert names["plain"] == "plain" and names["x_y"] == "x_y"


def test_export_of_odd_column_names_serves_predicts_numbers(runner, tmp_path, monkeypatch):
    """Names TensorFlow rejects as input names (a leading _, CJK, quotes) export and serve."""
    import tensorflow as tf

    monkeypatch.chdir(tmp_path)
    write_odd_csv(Path("t.csv"))
    args = ["train", "--data", "t.csv", "--label", "y", *FAST]
    assert runner.invoke(app, args).exit_code == 0
    predicted = runner.invoke(app, ["predict", "ckpt", "--data", "t.csv"])
    assert predicted.exit_code == 0, predicted.output
    expected = [float(r["prediction"]) for r in csv.DictReader(predicted.stdout.splitlines())]
    result = runner.invoke(app, ["export", "ckpt", "--out", "sm"])
    assert result.exit_code == 0, result.output
    serve = tf.saved_model.load("sm").signatures["serving_default"]
    from dcn_cli.model.export import signature_names

    names = signature_names(ODD)
    assert sorted(serve.structured_input_signature[1]) == sorted(names.values())
    with open("t.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    inputs = {}
    for feature, name in names.items():
        spec = serve.structured_input_signature[1][name]
        values = [r[feature] for r in rows]
        inputs[name] = tf.constant(values if spec.dtype == tf.string else np.float32(values))
    served = serve(**inputs)["prediction"].numpy().reshape(-1)
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_export_force_keeps_the_users_files(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("a,b,y\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(80)))
    assert runner.invoke(app, ["train", "--data", "t.csv", "--label", "y", *FAST]).exit_code == 0
    assert runner.invoke(app, ["export", "ckpt", "--out", "sm"]).exit_code == 0
    Path("sm/README-mine.txt").write_text("mine\n")
    (Path("sm/variables") / "stale").write_text("from the old export")
    result = runner.invoke(app, ["export", "ckpt", "--out", "sm", "--force"])
    assert result.exit_code == 0, result.output
    assert Path("sm/README-mine.txt").read_text() == "mine\n"
    assert not (Path("sm/variables") / "stale").exists()  # the old SavedModel's, replaced
    kept = sorted(p.name for p in Path("sm").iterdir())
    assert kept == ["README-mine.txt", "assets", "fingerprint.pb", "saved_model.pb", "variables"]
    assert not [p for p in Path(".").iterdir() if p.name.startswith(".sm")]


# ---------------------------------------------------------------- Parquet


def test_parquet_integers_beyond_float32_precision_are_numbers(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = 200
    table = pa.table(
        {
            "ts": pa.array(1_700_000_000 + np.arange(n) * 3600, pa.int64()),
            "big": pa.array(np.linspace(0, 1e6, n)),
            "y": pa.array(np.arange(n) % 2, pa.int64()),
        }
    )
    pq.write_table(table, "t.parquet")
    args = ["--label", "y", "--numerical", "ts", *FAST]  # distinct in every row: an id, unless
    result = runner.invoke(app, ["train", "--data", "t.parquet", *args])
    assert result.exit_code == 0, result.output
    record = json.loads(Path("ckpt/config.json").read_text())
    assert record["model"]["features"][0]["mean"] == pytest.approx(1.7e9 + 3600 * 99.5, rel=1e-3)
    # Beyond float32's range is still an error, naming the row and the value.
    big = table.set_column(1, "big", pa.array(np.r_[np.ones(n - 1), 1e39]))
    pq.write_table(big, "big.parquet")
    result = runner.invoke(app, ["train", "--data", "big.parquet", "--label", "y", "--out", "o"])
    one_line_error(result, "big.parquet: row 200: column 'big': 1e+39 is not a finite float32")


# ---------------------------------------------------------------- the cache


def _rewrite_same_size_and_time(path: Path, keep: int) -> None:
    """Keep the header and ``keep`` - 1 rows; pad one last row to the old size and restore
    the modification time, as an edit followed by ``touch -d`` does."""
    stat = path.stat()
    lines = path.read_text().splitlines(keepends=True)[:keep]
    text = "".join(lines)
    text += "0,0," + "p" * (stat.st_size - len(text) - len("0,0,,1\n")) + ",1\n"
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
def test_a_file_changed_under_the_same_size_and_time(runner, tmp_path, monkeypatch, streamed):
    monkeypatch.chdir(tmp_path)
    if streamed:
        monkeypatch.setenv("DCN_MEMORY_BUDGET_MB", "0")
    rows = "".join(f"{i % 7},{(i * 3) % 5},{'pq'[i % 2]},{i % 2}\n" for i in range(400))
    Path("s.csv").write_text("a,b,c,y\n" + rows)
    args = ["train", "--data", "s.csv", "--label", "y", "--json", "--force", *FAST]
    assert runner.invoke(app, args).exit_code == 0
    _rewrite_same_size_and_time(Path("s.csv"), 300)
    result = runner.invoke(app, args)
    if streamed:  # found while reading: one line, and the stale cache is gone
        one_line_error(result, "s.csv: holds 300 rows, not the 400 it held when prepared")
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output  # learnt anew
    assert json.loads(Path("ckpt/config.json").read_text())["data"]["rows"]["train"] < 300


# ---------------------------------------------------------------- streaming


def test_a_shard_deleted_before_the_test_pass_is_one_error_line(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DCN_MEMORY_BUDGET_MB", "0")
    generate("poly", tmp_path / "d", rows=600, shard_rows=200)
    evaluate = engine.Engine.evaluate

    def shard_gone(self, split):
        if split == "test":
            Path("d/data-00001.csv").unlink()
        return evaluate(self, split)

    monkeypatch.setattr(engine.Engine, "evaluate", shard_gone)
    result = runner.invoke(app, ["train", "--data", "d", "--json", *FAST])
    one_line_error(result, "data-00001.csv")


def test_a_streamed_run_resumes_only_on_its_own_cluster_shape(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DCN_MEMORY_BUDGET_MB", "0")
    generate("poly", tmp_path / "d", rows=300)
    assert runner.invoke(app, ["train", "--data", "d", *FAST]).exit_code == 0
    record = json.loads(Path("ckpt/config.json").read_text())
    assert record["cluster"] == {"workers": 1, "replicas": 1, "streamed": True}
    # As a run of two workers, interrupted, would have left it.
    record["cluster"]["workers"] = record["cluster"]["replicas"] = 2
    Path("ckpt/config.json").write_text(json.dumps(record))
    Path("ckpt/metrics.json").unlink()
    result = runner.invoke(app, ["train", "--resume", "--out", "ckpt", "--epochs", "2"])
    one_line_error(result, "started on 2 worker(s), 2 replica(s), data streamed", "--workers 2")
    # Held in memory, the steps do not depend on the cluster: resumed.
    monkeypatch.setenv("DCN_MEMORY_BUDGET_MB", "512")
    record["cluster"]["streamed"] = False
    Path("ckpt/config.json").write_text(json.dumps(record))
    resume = ["train", "--resume", "--out", "ckpt", "--json"]
    assert runner.invoke(app, [*resume, "--epochs", "2"]).exit_code == 0
    # dcn 0.3 recorded no shape: resumed, streamed or not.
    monkeypatch.setenv("DCN_MEMORY_BUDGET_MB", "0")
    record = json.loads(Path("ckpt/config.json").read_text())
    del record["cluster"]
    Path("ckpt/config.json").write_text(json.dumps(record))
    Path("ckpt/metrics.json").unlink()
    result = runner.invoke(app, [*resume, "--epochs", "3"])
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- the environment


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("DCN_MEMORY_BUDGET_MB", "inf", "DCN_MEMORY_BUDGET_MB='inf': expected a finite number"),
        ("DCN_MEMORY_BUDGET_MB", "nan", "DCN_MEMORY_BUDGET_MB='nan': expected a finite number"),
        ("DCN_MEMORY_BUDGET_MB", "-5", "DCN_MEMORY_BUDGET_MB='-5': expected a finite number"),
        ("DCN_MEMORY_BUDGET_MB", "lots", "DCN_MEMORY_BUDGET_MB='lots': expected a finite"),
        ("DCN_CACHE_DIR", "t.csv", "DCN_CACHE_DIR=t.csv: exists and is not a directory"),
        ("KERAS_BACKEND", "jax", "KERAS_BACKEND='jax': dcn runs on TensorFlow"),
    ],
)
@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_a_bad_environment_variable_is_one_error_line(
    runner, tmp_path, monkeypatch, variable, value, message, command
):
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("a,y\n1,2\n")
    monkeypatch.setenv(variable, value)
    args = {
        "train": ["train", "--data", "t.csv", "--label", "y"],
        "evaluate": ["evaluate", "ckpt"],
        "predict": ["predict", "ckpt", "--data", "t.csv"],
    }[command]
    one_line_error(runner.invoke(app, args), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "t.csv"]


# Runs the dcn commands given (as JSON lists of words) one after another in this one
# process, marking on stderr where each ended and with which exit code.
COMMANDS = """
import json, os, sys
from dcn_cli.commands import app

for words in json.loads(sys.argv[1]):
    try:
        app(words)
    except SystemExit as end:
        sys.stderr.flush()
        os.write(2, f"<exit {end.code}>\\n".encode())
"""


@pytest.mark.slow  # processes of their own, 10-25 s: .ci/run runs -m slow too
def test_a_real_process_writes_one_line_per_failed_command(tmp_path):
    """A real process: TensorFlow's start-up logging and tensorflow-datasets' own warning
    (a folder without dataset_info.json) reach nothing but dcn's one Error line. (In
    this process the test set-up has quietened absl already.) It must be offline, as
    this machine and CI are (else the download is tried)."""
    Path(tmp_path / "t.csv").write_text(
        "a,b,y\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 4}\n" for i in range(40))
    )
    (tmp_path / "tfds/movielens/100k-ratings/0.1.1").mkdir(parents=True)
    diverge = ["train", "--data", "t.csv", "--label", "y", "--optimizer", "sgd", "--lr", "1e30"]
    diverge += ["--arch", "cross", "--json", "--epochs", "1", "--batch-size", "64"]
    tfds = ["train", "--data", "tfds:movielens/100k-ratings", "--out", "m"]
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    command = [sys.executable, "-c", COMMANDS, json.dumps([diverge, tfds])]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second, rest = done.stderr.split("<exit 1>\n")
    assert first.startswith("Error: training diverged") and first.count("\n") == 1, first
    assert second.startswith("Error: tfds:movielens/100k-ratings: not downloaded yet")
    assert second.count("\n") == 1 and rest == "", second


# ---------------------------------------------------------------- leftovers of kill -9


def _killed_while_writing(directory: Path, code: str) -> None:
    """Run ``code`` (which starts writing) in a child process that then dies of SIGKILL."""
    script = f"import os\nfrom pathlib import Path\nfrom dcn_cli import fileio\n{code}\n"
    script += "    os.kill(os.getpid(), 9)\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=directory, capture_output=True)
    assert done.returncode == -9, done.stderr


def test_the_next_run_removes_what_a_killed_one_left(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("a,b,y\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(80)))
    assert runner.invoke(app, ["train", "--data", "t.csv", "--label", "y", *FAST]).exit_code == 0
    _killed_while_writing(tmp_path, "with fileio.atomic_path(Path('scores.csv')) as tmp:")
    _killed_while_writing(tmp_path, "if fileio.staging_dir(Path('sm.v1')):")
    _killed_while_writing(tmp_path, "if fileio.staging_dir(Path('d')):")  # dcn generate's
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".s", ".d.")))
    assert [re.sub(r"\.\w+-\d+-\w+", ".HOST-PID-X", name) for name in left] == [
        ".d.HOST-PID-X",
        ".scores.csv.HOST-PID-X.csv",
        ".sm.v1.HOST-PID-X",
    ]
    # Not ours, another host's, or another writer's still running: left alone.
    host = re.match(r"\.d\.(\w+)-", left[0])[1]
    mine = [
        ".scores.csv.bak",
        ".scores.csv.backup12.csv",
        f".scores.csv.{host}-{os.getppid()}-abcd1234.csv",
        ".scores.csv.0000beef-1-abcd1234.csv",
    ]
    for name in mine:
        Path(name).write_text("keep")
    Path(".sm.v1.versions").mkdir()
    mine.append(".sm.v1.versions")
    predict = ["predict", "ckpt", "--data", "t.csv", "--out", "scores.csv"]
    assert runner.invoke(app, predict).exit_code == 0
    assert runner.invoke(app, ["export", "ckpt", "--out", "sm.v1"]).exit_code == 0
    assert runner.invoke(app, ["generate", "poly", "--out", "d", "--rows", "50"]).exit_code == 0
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".s", ".d.")))
    assert left == sorted(mine)


def test_explain_replaces_a_file_the_user_names_only_with_force(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("a,b,y\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(80)))
    assert runner.invoke(app, ["train", "--data", "t.csv", "--label", "y", *FAST]).exit_code == 0
    Path("mine.png").write_bytes(b"my picture")
    result = runner.invoke(app, ["explain", "ckpt", "--out", "mine.png"])
    one_line_error(result, "mine.png: exists; replace it with --force")
    assert Path("mine.png").read_bytes() == b"my picture"
    assert runner.invoke(app, ["explain", "ckpt", "--out", "mine.png", "--force"]).exit_code == 0
    assert Path("mine.png").read_bytes().startswith(b"\x89PNG")
    for _ in range(2):  # the checkpoint's own figure is redrawn unasked
        assert runner.invoke(app, ["explain", "ckpt"]).exit_code == 0


# ---------------------------------------------------------------- errors that name the row


@pytest.mark.parametrize("command", ["predict", "evaluate --data", "evaluate its own"])
def test_a_prediction_that_is_not_finite_names_file_and_line(
    runner, tmp_path, monkeypatch, command
):
    from dcn_cli.data.sources import open_table
    from dcn_cli.data.splits import TEST, assign_splits

    monkeypatch.chdir(tmp_path)
    rows = [f"{i % 7},{i % 3},{i % 2}" for i in range(80)]
    Path("t.csv").write_text("a,b,y\n" + "\n".join(rows) + "\n")
    args = ["train", "--data", "t.csv", "--label", "y", "--numerical", "a,b", *FAST]
    assert runner.invoke(app, args).exit_code == 0
    schema = open_table("t.csv", "y", numerical="a,b").schema
    tested = np.flatnonzero(assign_splits(np.arange(80), schema, 0.0, 80) == TEST)
    bad = int(tested[tested > 2][0])  # a test row, so that evaluate reads it too
    rows[bad] = "3e38,1,0"
    # A blank line 2: the row is on line bad + 3.
    Path("new.csv").write_text("a,b,y\n\n" + "\n".join(rows) + "\n")
    if command == "evaluate its own":
        Path("new.csv").replace("t.csv")
    args = {
        "predict": ["predict", "ckpt", "--data", "new.csv"],
        "evaluate --data": ["evaluate", "ckpt", "--data", "new.csv"],
        "evaluate its own": ["evaluate", "ckpt"],
    }[command]
    where = f"{Path('t.csv').absolute()}" if command == "evaluate its own" else "new.csv"
    one_line_error(runner.invoke(app, args), f"{where}:{bad + 3}: the model's prediction")


@pytest.mark.parametrize("split", ["random", "ordered"])
def test_bayes_figures_match_the_whole_arrays(tmp_path, split):
    """Streamed in blocks and binned, the Bayes-optimal figures are those of whole arrays
    (an ordered split leaves whole blocks without a test row)."""
    from helpers import exact_auc

    from dcn_cli.data.sources import open_table
    from dcn_cli.data.splits import TEST, assign_splits
    from dcn_cli.data.truth import bayes_optimal, logloss

    generate("ctr", tmp_path / "ctr", rows=3000, vocab_size=50, shard_rows=1100)
    if split == "ordered":
        schema = json.loads((tmp_path / "ctr/schema.json").read_text())
        schema["split"] = {"kind": "ordered", "test": 0.2}
        (tmp_path / "ctr/schema.json").write_text(json.dumps(schema))
    table = open_table(str(tmp_path / "ctr"))
    labels = np.concatenate([c[table.schema.label].to_numpy() for c in table.chunks()])
    truth = np.concatenate(
        [np.loadtxt(tmp_path / "ctr" / name, skiprows=1) for name in table.schema.truth]
    )
    test = assign_splits(np.arange(len(labels)), table.schema, 0.1, len(labels)) == TEST
    figures = bayes_optimal(table, 0.1)
    assert figures["bayes_auc"] == pytest.approx(exact_auc(labels[test], truth[test]), abs=1e-5)
    assert figures["bayes_logloss"] == pytest.approx(logloss(labels[test], truth[test]))
