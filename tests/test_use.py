"""Using a trained model: predict, export, checkpoints that travel, and a tool that
behaves in scripts (refusals, file modes, plain progress, clean JSON, help)."""

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcn_cli.commands import app

FEATURES = ["user", "item", "page views", "price"]


def write_clicks(path: Path, rows: int, seed: int, label: bool = True, order=None) -> None:
    """Clicks with a string, an integer and two numeric features, an id and a label."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 30, rows)
    items = rng.integers(0, 12, rows)
    views = rng.integers(0, 50, rows)
    price = rng.normal(10, 3, rows).round(2)
    logit = 0.8 * ((users % 3) == (items % 3)) - 0.02 * views + 0.1 * (price - 10)
    clicked = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    columns = {
        "request_id": [f"r{seed}-{i}" for i in range(rows)],
        "user": [f"u{u}" for u in users],
        "item": items,
        "page views": views,
        "price": price,
        "clicked": clicked,
    }
    if not label:
        del columns["clicked"]
    names = order or list(columns)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names), strict=True))


TRAIN = [
    "--label",
    "clicked",
    "--categorical",
    "user,item,request_id",
    "--numerical",
    "page views,price",  # uniform counts, which dcn would read as codes
    "--patience",
    "0",
    "--epochs",
    "1",
    "--batch-size",
    "64",
    "--embedding-dim",
    "4",
    "--deep-layers",
    "8",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project directory holding clicks.csv and a checkpoint trained on it (no ids)."""
    from typer.testing import CliRunner

    project = tmp_path_factory.mktemp("project")
    write_clicks(project / "all.csv", 600, seed=0)
    # Train without the id column: it is no feature.
    with open(project / "all.csv") as src, open(project / "clicks.csv", "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        for row in reader:
            writer.writerow(row[1:])
    (project / "all.csv").unlink()
    train = [a if a != "user,item,request_id" else "user,item" for a in TRAIN]
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(project / "clicks.csv"), "--out", str(project / "ckpt"), *train],
    )
    assert result.exit_code == 0, result.output
    return project


def raw_predictions(ckpt: Path, csv_path: Path) -> np.ndarray:
    """The saved Keras model's own predictions on a CSV's rows: the reference."""
    from dcn_cli.model.checkpoint import load_model

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    x = {
        "user": np.array([r["user"] for r in rows], dtype=object),  # not a NumPy str array
        "item": np.array([int(r["item"]) for r in rows], np.int64),
        "page views": np.array([float(r["page views"]) for r in rows], np.float32),
        "price": np.array([float(r["price"]) for r in rows], np.float32),
    }
    model = load_model(ckpt)
    return np.asarray(model.predict(x, verbose=0)).reshape(-1)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def test_predict_scores_rows_without_a_label_in_input_order(runner, trained, tmp_path):
    new = tmp_path / "new.csv"
    # Other column order, no label, an id column the model never saw.
    write_clicks(
        new, 300, seed=1, label=False, order=["price", "request_id", "page views", "item", "user"]
    )
    result = runner.invoke(
        app, ["predict", str(trained / "ckpt"), "--data", str(new), "--id", "request_id"]
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(result.stdout)
    assert list(rows[0]) == ["row", "request_id", "prediction"]
    assert [r["row"] for r in rows] == [str(i) for i in range(300)]
    assert [r["request_id"] for r in rows] == [f"r1-{i}" for i in range(300)]
    got = np.array([float(r["prediction"]) for r in rows])
    assert ((got > 0) & (got < 1)).all()  # a binary model: click probabilities
    np.testing.assert_allclose(got, raw_predictions(trained / "ckpt", new), atol=1e-6)


def test_predict_copies_the_label_and_writes_csv_or_parquet(runner, trained, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    new = tmp_path / "new.csv"
    write_clicks(new, 200, seed=2)
    ckpt = str(trained / "ckpt")
    result = runner.invoke(
        app, ["predict", ckpt, "--data", str(new), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 200 predictions" in result.stderr and result.stdout == ""
    from_csv = read_csv((tmp_path / "p.csv").read_text())
    assert list(from_csv[0]) == ["row", "clicked", "prediction"]
    with open(new, newline="") as handle:
        assert [r["clicked"] for r in from_csv] == [r["clicked"] for r in csv.DictReader(handle)]

    # The same rows as Parquet in, Parquet out.
    pq.write_table(pa_csv.read_csv(new), tmp_path / "new.parquet")
    out = tmp_path / "p.parquet"
    result = runner.invoke(
        app,
        [
            "predict",
            ckpt,
            "--data",
            str(tmp_path / "new.parquet"),
            "--out",
            str(out),
            "--id",
            "request_id",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == ["row", "request_id", "clicked", "prediction"]
    assert table.schema.field("prediction").type == pa.float32()
    assert table["row"].to_pylist() == list(range(200))
    np.testing.assert_allclose(
        table["prediction"].to_numpy(), [float(r["prediction"]) for r in from_csv], atol=1e-6
    )
    for path in (tmp_path / "p.csv", out):
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask(), path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_predict_streams_a_sharded_dataset_chunk_by_chunk(runner, trained, tmp_path, monkeypatch):
    """Rows are scored a few at a time, numbered across files in order."""
    import dcn_cli.data.delimited
    import dcn_cli.train.pipeline
    from dcn_cli.data.schema import Column, Schema

    data = tmp_path / "shards"
    data.mkdir()
    for k in range(3):
        write_clicks(data / f"part-{k}.csv", 70, seed=10 + k)
    schema = Schema(
        columns=[
            Column("request_id", "categorical", "string"),
            Column("user", "categorical", "string"),
            Column("item", "categorical", "int64"),
            Column("page views", "numerical"),
            Column("price", "numerical"),
            Column("clicked", "label"),
        ],
        task="binary",
        files=[f"part-{k}.csv" for k in range(3)],
    )
    schema.save(data / "schema.json")
    gathered, sizes = dcn_cli.train.pipeline.gathered, []

    def small(chunks, rows=0):
        for table in gathered(chunks, rows=25):
            sizes.append(table.num_rows)
            yield table

    monkeypatch.setattr(dcn_cli.train.pipeline, "gathered", small)
    monkeypatch.setattr(dcn_cli.data.delimited, "PIECE_BYTES", 600)  # a file is read in pieces
    result = runner.invoke(
        app, ["predict", str(trained / "ckpt"), "--data", str(data), "--id", "request_id"]
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(result.stdout)
    assert len(sizes) > 3 and max(sizes) < 70  # many small pieces, never a whole file
    assert [r["row"] for r in rows] == [str(i) for i in range(210)]
    expected = [f"r{10 + k}-{i}" for k in range(3) for i in range(70)]
    assert [r["request_id"] for r in rows] == expected


@pytest.mark.parametrize(
    "drop, message",
    [
        ("price", "does not match the checkpoint's features: missing column(s) price"),
        (None, "no column(s) order_id to copy (--id)"),
    ],
)
def test_predict_names_what_does_not_match(runner, trained, tmp_path, drop, message):
    new = tmp_path / "new.csv"
    names = ["request_id", "user", "item", "page views", "price", "clicked"]
    write_clicks(new, 20, seed=3, order=[n for n in names if n != drop])
    args = ["predict", str(trained / "ckpt"), "--data", str(new)]
    if drop is None:
        args += ["--id", "order_id"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {new}: {message}\n"


def test_predict_names_a_bad_cell(runner, trained, tmp_path):
    new = tmp_path / "new.csv"
    write_clicks(new, 20, seed=4)
    lines = new.read_text().splitlines()
    cells = lines[5].split(",")
    cells[4] = "cheap"  # price
    lines[5] = ",".join(cells)
    new.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["predict", str(trained / "ckpt"), "--data", str(new)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {new}:6:") and "price" in result.stderr


def test_predict_never_overwrites_unasked(runner, trained, tmp_path):
    new = tmp_path / "new.csv"
    write_clicks(new, 20, seed=5)
    out = tmp_path / "p.csv"
    out.write_text("mine\n")
    args = ["predict", str(trained / "ckpt"), "--data", str(new), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert (
        result.stderr == f"Error: {out}: exists; replace it with --force, or choose another --out\n"
    )
    assert out.read_text() == "mine\n"
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert out.read_text().startswith("row,clicked,prediction\n")


@pytest.mark.slow  # processes of their own, 10-25 s: .ci/run runs -m slow too
def test_a_fresh_interpreter_serves_the_export_without_dcn_and_loads_model_keras(
    runner, trained, tmp_path
):
    """What a user does with a trained model outside dcn, in one fresh interpreter: the
    SavedModel serves dcn predict's numbers while dcn_cli cannot be imported; then,
    with dcn's registrations imported, plain load_model (safe mode) reads model.keras
    and predicts the same."""
    new = tmp_path / "new.csv"
    write_clicks(new, 50, seed=6)
    ckpt = str(trained / "ckpt")
    predicted = runner.invoke(app, ["predict", ckpt, "--data", str(new)])
    assert predicted.exit_code == 0, predicted.output
    expected = [float(r["prediction"]) for r in read_csv(predicted.stdout)]
    out = tmp_path / "served"
    result = runner.invoke(app, ["export", ckpt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "saved_model.pb").stat().st_mode & 0o777 == 0o666 & ~current_umask()
    from dcn_cli.model.export import signature_names

    columns = {v: k for k, v in signature_names(FEATURES).items()}  # "page views" is renamed
    code = f"""
import csv, json, sys
sys.modules["dcn_cli"] = None  # importing dcn_cli now fails
import numpy as np, tensorflow as tf
serve = tf.saved_model.load({str(out)!r}).signatures["serving_default"]
inputs = serve.structured_input_signature[1]
rows = list(csv.DictReader(open({str(new)!r}, newline="")))
x = {{}}
for name, spec in inputs.items():
    values = [r[{columns!r}[name]] for r in rows]
    dtype = spec.dtype.as_numpy_dtype
    x[name] = tf.constant(values if spec.dtype == tf.string else np.array(values).astype(dtype))
out = serve(**x)
del sys.modules["dcn_cli"]
import keras
import dcn_cli.model.layers, dcn_cli.model.optimizers
model = keras.models.load_model({str(trained / "ckpt" / "model.keras")!r})
rows = {{name: np.array([r[name] for r in rows], dtype=object if name == "user" else
         "int64" if name == "item" else "float32") for name in {FEATURES!r}}}
print(json.dumps({{"inputs": sorted(inputs), "outputs": sorted(out),
                  "prediction": out["prediction"].numpy().reshape(-1).tolist(),
                  "keras": model.predict(rows, verbose=0).reshape(-1).tolist()}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["inputs"] == sorted(
        ["item", "page_views_" + served["inputs"][1][-8:], "price", "user"]
    )
    assert served["outputs"] == ["prediction"]
    np.testing.assert_allclose(served["prediction"], expected, atol=1e-6)
    np.testing.assert_allclose(served["keras"], expected, atol=1e-6)
    # An existing export is not replaced unasked.
    result = runner.invoke(app, ["export", ckpt, "--out", str(out)])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: {out}: is not empty; replace it with --force, or choose another --out\n"
    )
    assert runner.invoke(app, ["export", ckpt, "--out", str(out), "--force"]).exit_code == 0


def test_a_moved_checkpoint_still_works(runner, trained, tmp_path, monkeypatch):
    """Copied with its data, it finds the data; copied alone, what needs no data works."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(trained, copy)
    moved = trained.parent / (trained.name + "-moved")
    monkeypatch.chdir(tmp_path)
    shutil.move(trained, moved)  # the original data path no longer exists
    try:
        result = runner.invoke(app, ["evaluate", str(copy / "ckpt"), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rows"] > 0
        (copy / "clicks.csv").unlink()
        result = runner.invoke(app, ["evaluate", str(copy / "ckpt")])
        assert result.exit_code == 1
        assert result.stderr.startswith(
            f"Error: {copy / 'ckpt'}: the data it was trained on is missing"
        )
        assert "predict, export, explain and evaluate --data work without it" in result.stderr
        new = tmp_path / "new.csv"
        write_clicks(new, 20, seed=7)
        for args in (
            ["predict", str(copy / "ckpt"), "--data", str(new)],
            ["evaluate", str(copy / "ckpt"), "--data", str(new)],
            ["explain", str(copy / "ckpt")],
            ["export", str(copy / "ckpt"), "--out", str(tmp_path / "served")],
        ):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
    finally:
        shutil.move(moved, trained)


def test_config_saves_the_data_path_to_travel(trained):
    record = json.loads((trained / "ckpt" / "config.json").read_text())
    assert record["data"]["data"] == str(trained / "clicks.csv")
    assert record["data"]["data_from_checkpoint"] == os.path.join("..", "clicks.csv")


@pytest.fixture(scope="module")
def mixer(tmp_path_factory) -> str:
    """The mixer toy, 2,000 rows: what these tests check does not need the built-in 100k."""
    from dcn_cli.data.generate import generate

    path = tmp_path_factory.mktemp("mixer") / "mixer"
    generate("mixer", path, rows=2000)
    return str(path)


def test_compare_refuses_a_directory_that_holds_files(runner, mixer, tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    args = ["compare", "cross", "--runs", "1", "--epochs", "1", "--data", mixer, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out}: is not empty; replace its comparison with --force, "
        "or choose another --out\n"
    )
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "comparison.csv",
        "comparison.json",
        "comparison.png",
        "notes.txt",
    ]
    assert (out / "notes.txt").read_text() == "mine\n"
    for path in out.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask(), path


def test_outside_a_terminal_progress_is_plain_lines(runner, mixer, tmp_path):
    result = runner.invoke(
        app,
        ["train", "--arch", "cross", "--epochs", "2", "--data", mixer]
        + ["--out", str(tmp_path / "ckpt")],
    )
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("rows/s" in line and "…" not in line for line in lines)
    result = runner.invoke(
        app,
        ["compare", "cross", "dnn", "--runs", "2", "--epochs", "1", "--data", mixer]
        + ["--out", str(tmp_path / "c")],
    )
    assert result.exit_code == 0, result.output
    runs = [line for line in result.stderr.splitlines() if line.startswith("run ")]
    assert [line.split("  ")[0] for line in runs] == ["run 1/4", "run 2/4", "run 3/4", "run 4/4"]
    assert "…" not in result.stdout
    assert "precision float32" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--arch", "cross", "--epochs", "1", "--json"],
        ["compare", "cross", "--runs", "1", "--epochs", "1", "--json"],
    ],
)
def test_json_output_is_the_json_alone(runner, mixer, tmp_path, args):
    result = runner.invoke(app, [*args, "--data", mixer, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # nothing else on stdout
    assert result.stderr == ""


def test_help_shows_flags_as_flags_and_offers_completion(runner, monkeypatch):
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.output
    for command in ("train", "compare", "explain", "evaluate", "predict", "export"):
        text = runner.invoke(app, [command, "--help"]).output
        assert "<bool>" not in text and "--no-" not in text, command
    # Typer detects the shell from the parent process unless told not to; then it takes
    # the shell named, whatever runs the tests.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = runner.invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0, result.output
    assert "complete" in result.output


def write_criteo(path: Path, rows: int, seed: int, label: bool = True) -> None:
    rng = np.random.default_rng(seed)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        for _ in range(rows):
            clicked = str(rng.integers(0, 2))  # drawn either way: the same rows follow
            fields = [clicked] if label else []
            fields += [str(rng.integers(0, 9)) if rng.random() > 0.1 else "" for _ in range(13)]
            fields += [f"{rng.integers(0, 5):08x}" for _ in range(26)]
            handle.write("\t".join(fields) + "\n")


@pytest.mark.slow  # 39 features to trace: 12-16 s; .ci/run runs -m slow too
def test_predict_reads_criteo_files_with_or_without_labels(runner, tmp_path):
    train = tmp_path / "day.tsv"
    write_criteo(train, 300, seed=0)
    ckpt = tmp_path / "ckpt"
    args = ["--epochs", "1", "--embedding-dim", "2", "--deep-layers", "4", "--json"]
    result = runner.invoke(app, ["train", "--data", str(train), "--out", str(ckpt), *args])
    assert result.exit_code == 0, result.output
    labelled, unlabelled = tmp_path / "new.tsv.gz", tmp_path / "test.tsv"
    write_criteo(labelled, 40, seed=1)
    write_criteo(unlabelled, 40, seed=1, label=False)  # Kaggle's test file: the same rows
    # The labelled rows to a gzip CSV, the same rows without labels to stdout.
    out = tmp_path / "scores.csv.gz"
    result = runner.invoke(app, ["predict", str(ckpt), "--data", str(labelled), "--out", str(out)])
    assert result.exit_code == 0, result.output
    outputs = {"new.tsv.gz": read_csv(gzip.decompress(out.read_bytes()).decode())}
    result = runner.invoke(app, ["predict", str(ckpt), "--data", str(unlabelled)])
    assert result.exit_code == 0, result.output
    outputs["test.tsv"] = read_csv(result.stdout)
    assert list(outputs["new.tsv.gz"][0]) == ["row", "label", "prediction"]
    assert list(outputs["test.tsv"][0]) == ["row", "prediction"]
    assert [r["prediction"] for r in outputs["new.tsv.gz"]] == [
        r["prediction"] for r in outputs["test.tsv"]
    ]
    # evaluate needs the labels, and says so.
    result = runner.invoke(app, ["evaluate", str(ckpt), "--data", str(unlabelled)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {unlabelled}: Criteo rows without their label; evaluate needs labels\n"
    )


def test_export_force_replaces_only_an_earlier_export(runner, trained, tmp_path, monkeypatch):
    ckpt = str(trained / "ckpt")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    result = runner.invoke(app, ["export", ckpt, "--out", str(mine), "--force"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {mine}: holds files but no SavedModel; --force replaces only an earlier "
        "export, so choose another --out\n"
    )
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    monkeypatch.chdir(mine)
    for out in (".", str(tmp_path), str(trained)):
        result = runner.invoke(app, ["export", ckpt, "--out", out, "--force"])
        assert result.exit_code == 1
        assert "holds the working directory or the checkpoint" in result.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_explain_of_a_mixture_copied_without_its_data(runner, tmp_path):
    data = tmp_path / "clicks.csv"
    write_clicks(data, 200, seed=8)
    ckpt = tmp_path / "ckpt"
    args = [*TRAIN, "--cross-type", "mix", "--projection-dim", "2", "--num-experts", "2"]
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(ckpt), *args])
    assert result.exit_code == 0, result.output
    data.unlink()
    result = runner.invoke(app, ["explain", str(ckpt), "--json"])
    assert result.exit_code == 0, result.output
    gates, ranking = result.stderr.splitlines()
    assert gates.startswith(f"Warning: {ckpt}: the data it was trained on is missing")
    assert gates.endswith("the gated sum weighs the experts equally")
    assert ranking.endswith("the crosses are ranked by the weights' strength")
    report = json.loads(result.stdout)
    assert report["layer"] == 0 and report["ranked_by"] == "strength"
    result = runner.invoke(app, ["explain", str(ckpt), "--rank-by", "effect"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.endswith("--rank-by effect needs it (--rank-by strength does not)\n")
