"""List-valued categorical features: read, counted per element, embedded and pooled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dcn_cli.commands import app
from dcn_cli.data.prepare import DataOptions, prepare
from dcn_cli.data.sources import open_table

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Rare"]
FAST = ["--deep-layers", "8", "--embedding-dim", "4", "--patience", "0", "--epochs", "2"]


def movies(path: Path, rows: int = 300, seed: int = 0) -> Path:
    """Users, a genres cell of 0-3 genres joined by |, a price and a click that
    depends on a genre crossed with the user."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["user", "genres", "price", "clicked"])
        for i in range(rows):
            genres = list(rng.choice(GENRES[:6], int(rng.integers(0, 4)), replace=False))
            if i == 5:
                genres = ["Rare"]  # seen once: below the default --min-count
            user = int(rng.integers(0, 10))
            logit = 2.0 * ("Horror" in genres) * (user % 2) - 0.5
            clicked = int(rng.random() < 1 / (1 + np.exp(-logit)))
            out.writerow([f"u{user}", "|".join(genres), f"{rng.uniform(1, 9):.2f}", clicked])
    return path


def test_a_list_is_counted_per_element(tmp_path):
    table = open_table(str(movies(tmp_path / "m.csv")), label="clicked", lists="genres")
    column = {c.name: c for c in table.schema.columns}["genres"]
    assert (column.role, column.dtype, column.separator) == ("categorical", "string", "|")
    prepared = prepare(table, DataOptions(cache=False))
    genres = {f.name: f for f in prepared.features}["genres"]
    assert sorted(genres.vocabulary) == sorted(GENRES[:6])  # "Rare" is below --min-count 2
    assert genres.max_length == 3 and genres.separator == "|" and genres.pooling == "mean"
    every = prepare(table, DataOptions(cache=False, min_count=1))
    assert "Rare" in {f.name: f for f in every.features}["genres"].vocabulary
    hashed = prepare(table, DataOptions(cache=False, hash_buckets={"genres": 16}))
    genres = {f.name: f for f in hashed.features}["genres"]
    assert genres.hash_buckets == 16 and genres.max_length == 3


def test_the_encoder_gives_the_models_own_list_ids(tmp_path):
    from dcn_cli import backend

    keras = backend.load()
    import tensorflow as tf

    from dcn_cli.data.features import FeatureSpec
    from dcn_cli.model.lists import ListLookup
    from dcn_cli.train.pipeline import Encoder

    cells = ["Action|Drama", "", "Drama||Nope|Action|Comedy", "Comedy"]
    chunk = pa.table({"genres": cells})
    for spec, layer in [
        (
            FeatureSpec(
                "genres", "categorical", "string", vocabulary=["Action", "Comedy", "Drama"]
            ),
            ListLookup("|", 3, vocabulary=["Action", "Comedy", "Drama"]),
        ),
        (
            FeatureSpec("genres", "categorical", "string", hash_buckets=7),
            ListLookup("|", 3, hash_buckets=7),
        ),
    ]:
        spec.separator, spec.max_length = "|", 3
        ours = Encoder([spec]).column(chunk, "genres")
        model = layer(tf.constant(cells)).numpy()
        np.testing.assert_array_equal(ours, model)
    assert ours.shape == (4, 3) and (ours[1] == -1).all()  # an empty list
    assert keras is not None


def test_pooling_is_the_mean_or_sum_of_the_element_embeddings():
    from dcn_cli import backend

    keras = backend.load()
    from dcn_cli.model.lists import PooledEmbedding

    ids = np.array([[1, 2, -1], [-1, -1, -1], [0, 0, 3]])
    for pooling in ("mean", "sum"):
        layer = PooledEmbedding(4, 2, pooling=pooling)
        layer.build(ids.shape)
        table = np.arange(8, dtype=np.float32).reshape(4, 2)
        layer.set_weights([table])
        got = np.asarray(layer(ids))
        sums = np.array([table[1] + table[2], [0, 0], 2 * table[0] + table[3]])
        counts = np.array([[2], [1], [3]]) if pooling == "mean" else 1
        np.testing.assert_allclose(got, sums / counts, rtol=1e-6)
        again = PooledEmbedding.from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="`pooling` must be mean or sum. Received: pooling='max'"):
        PooledEmbedding(4, 2, pooling="max")
    assert keras is not None


def test_train_predict_export_and_explain_a_list_feature(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = movies(tmp_path / "m.csv")
    args = ["train", "--data", str(data), "--label", "clicked", "--list", "genres", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(Path("ckpt/config.json").read_text())
    genres = next(f for f in record["model"]["features"] if f["name"] == "genres")
    assert genres["separator"] == "|" and genres["max_length"] == 3
    assert runner.invoke(app, ["evaluate", "ckpt"]).exit_code == 0  # its own data, reread

    predicted = runner.invoke(app, ["predict", "ckpt", "--data", str(data)])
    assert predicted.exit_code == 0, predicted.output
    expected = [float(line.rsplit(",", 1)[1]) for line in predicted.stdout.splitlines()[1:]]
    assert runner.invoke(app, ["export", "ckpt", "--out", "served"]).exit_code == 0
    import tensorflow as tf

    serve = tf.saved_model.load("served").signatures["serving_default"]
    rows = list(csv.DictReader(open(data, newline="")))
    served = serve(
        user=tf.constant([r["user"] for r in rows]),
        genres=tf.constant([r["genres"] for r in rows]),  # the raw cell, split in the model
        price=tf.constant([float(r["price"]) for r in rows], tf.float32),
    )["prediction"]
    np.testing.assert_allclose(served.numpy().reshape(-1), expected, atol=1e-6)

    result = runner.invoke(app, ["explain", "ckpt", "--json"])
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    assert explained["features"] == ["user", "genres", "price"]  # the pooled list: one block
    assert np.shape(explained["matrix"]) == (9, 9)  # 4 + 4 + 1 wide
    # ... and one feature in every other view: flow, ablation and one row's parts.
    assert explained["ranked_by"] == "effect" and np.shape(explained["flow"]) == (3, 3)
    assert np.shape(explained["effect"]) == (3, 3)
    assert len(explained["top"]) == 6  # 3 features: 6 pairs, genres x genres among them
    result = runner.invoke(app, ["explain", "ckpt", "--ablate", "6", "--json"])
    assert result.exit_code == 0, result.output
    ablated = {tuple(sorted(r["features"])) for r in json.loads(result.stdout)["ablation"]["pairs"]}
    assert ("genres", "user") in ablated and len(ablated) == 6
    result = runner.invoke(app, ["explain", "ckpt", "--data", str(data), "--row", "2", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert [f["feature"] for f in row["features"]].count("genres") == 1
    assert len(row["features"]) == 3 and len(row["pairs"]) == 6


def test_a_parquet_list_column_is_a_list_feature(tmp_path):
    values = [["a", "b"], [], None, ["c"], ["a"]] * 10
    numbers = [[1, 2], [], None, [3], [1]] * 10
    table = pa.table(
        {"tags": values, "codes": numbers, "y": [0, 1, 0, 1, 1] * 10},
        schema=pa.schema(
            [("tags", pa.list_(pa.string())), ("codes", pa.list_(pa.int64())), ("y", pa.int64())]
        ),
    )
    pq.write_table(table, tmp_path / "t.parquet")
    opened = open_table(str(tmp_path / "t.parquet"), label="y")
    columns = {c.name: c for c in opened.schema.columns}
    assert columns["tags"].separator == columns["codes"].separator == "|"
    (chunk,) = list(opened.chunks())
    assert chunk["tags"].to_pylist()[:5] == ["a|b", "", "", "c", "a"]
    assert chunk["codes"].to_pylist()[:5] == ["1|2", "", "", "3", "1"]


def test_a_schema_json_list_column(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    movies(directory / "m.csv")
    schema = {
        "columns": [
            {"name": "user", "role": "categorical", "dtype": "string"},
            {"name": "genres", "role": "categorical", "dtype": "string", "separator": "|"}
            | {"pooling": "sum"},
            {"name": "price", "role": "numerical"},
            {"name": "clicked", "role": "label"},
        ],
        "task": "binary",
        "files": ["m.csv"],
    }
    (directory / "schema.json").write_text(json.dumps(schema))
    prepared = prepare(open_table(str(directory)), DataOptions(cache=False))
    genres = {f.name: f for f in prepared.features}["genres"]
    assert (genres.separator, genres.max_length, genres.pooling) == ("|", 3, "sum")
    schema["columns"][2]["separator"] = "|"  # on a number
    (directory / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(Exception, match="only a categorical column of dtype string holds lists"):
        open_table(str(directory))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--list", "nope"], "--list names 'nope', which is not a column"),
        (["--list", "genres", "--numerical", "genres"], "named by both --numerical and --list"),
        (["--list", "clicked"], "'clicked' is the label; --list cannot name it"),
    ],
)
def test_a_bad_list_option_is_one_error(runner, tmp_path, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    movies(tmp_path / "m.csv")
    result = runner.invoke(app, ["train", "--data", "m.csv", "--label", "clicked", *flags])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr


def test_generate_ctr_with_tags_plants_a_list_cross(tmp_path):
    from dcn_cli.data.generate import generate

    schema = generate("ctr", tmp_path / "ctr", rows=400, vocab_size=100, with_tags=True)
    column = {c.name: c for c in schema.columns}["tags"]
    assert (column.role, column.separator) == ("categorical", "|")
    assert {"features": ["tags", "I2"], "weight": 2.0} in schema.crosses
    (chunk,) = list(open_table(str(tmp_path / "ctr")).chunks())
    counts = [len([t for t in cell.split("|") if t]) for cell in chunk["tags"].to_pylist()]
    assert set(counts) == {0, 1, 2, 3, 4}
    plain = generate("ctr", tmp_path / "plain", rows=400, vocab_size=100)
    assert "tags" not in [c.name for c in plain.columns]


def test_predict_and_evaluate_read_parquet_lists_and_empty_numbers(runner, tmp_path, monkeypatch):
    """Other data is read as the training data was: Parquet lists as lists, and empty
    numbers as 0 where training read them so."""
    monkeypatch.chdir(tmp_path)
    rows = 200
    table = pa.table(
        {
            "tags": [["a", "b"], [], None, ["c"]] * (rows // 4),
            "visits": [1.0, None, 3.0, 0.0] * (rows // 4),
            "y": [0, 1, 1, 0] * (rows // 4),
        }
    )
    pq.write_table(table, "t.parquet")
    args = ["train", "--data", "t.parquet", "--label", "y", *FAST]
    assert runner.invoke(app, args).exit_code == 0
    for command in ("predict", "evaluate"):
        result = runner.invoke(app, [command, "ckpt", "--data", "t.parquet"])
        assert result.exit_code == 0, result.output
    clash = table.set_column(0, "tags", pa.array([["x|y"], []] * (rows // 2)))
    pq.write_table(clash, "clash.parquet")
    result = runner.invoke(app, ["predict", "ckpt", "--data", "clash.parquet"])
    assert result.exit_code == 1
    assert "the element 'x|y' holds the separator '|'; give another with --list tags=SEP" in (
        result.stderr
    )
