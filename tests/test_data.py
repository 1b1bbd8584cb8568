"""Data: dcn generate, the readers, splits, vocabularies and the tf.data pipeline."""

import csv
import gzip
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import dataset

from dcn_cli.commands import app
from dcn_cli.data.generate import generate
from dcn_cli.data.movielens import bucketize_age
from dcn_cli.data.prepare import DataOptions, prepare
from dcn_cli.data.schema import Schema
from dcn_cli.data.sources import open_table
from dcn_cli.data.splits import assign_splits
from dcn_cli.errors import DcnError
from dcn_cli.settings import parse_pairs as parse_hash_buckets


def tutorial_mixer(data_size=100_000, random_seed=42):
    """get_mixer_data() exactly as the TensorFlow Recommenders tutorial writes it."""
    rng = np.random.RandomState(random_seed)
    country = rng.randint(200, size=[data_size, 1]) / 200.0
    bananas = rng.randint(24, size=[data_size, 1]) / 24.0
    cookbooks = rng.randint(6, size=[data_size, 1]) / 6.0
    x = np.concatenate([country, bananas, cookbooks], axis=1)
    y = 0.1 * country + 0.4 * bananas + 0.7 * cookbooks
    y += 0.1 * country * bananas + 3.1 * bananas * cookbooks + (0.1 * cookbooks * cookbooks)
    return x, y


def read_csv_floats(directory: Path):
    schema = json.loads((directory / "schema.json").read_text())
    rows = []
    for name in schema["files"]:
        with open(directory / name) as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows += [[float(v) for v in row] for row in reader]
    return header, np.array(rows)


def test_mixer_reproduces_the_tutorial_value_for_value(tmp_path):
    generate("mixer", tmp_path / "mixer")
    header, values = read_csv_floats(tmp_path / "mixer")
    x, y = tutorial_mixer()
    assert header == ["country", "bananas", "cookbooks", "y"]
    assert values.shape == (100_000, 4)
    np.testing.assert_array_equal(values[:, :3], x)  # exact, not approximate
    np.testing.assert_array_equal(values[:, 3], y[:, 0])


def test_mixer_split_is_the_tutorials_first_90_percent(tmp_path):
    generate("mixer", tmp_path / "m", rows=1000)
    prepared = prepare(open_table(str(tmp_path / "m")))
    assert prepared.rows == {"train": 900, "validation": 0, "test": 100}
    x, _ = tutorial_mixer(1000)
    np.testing.assert_allclose(prepared.arrays("train")["country"], x[:900, 0], rtol=1e-7)
    np.testing.assert_allclose(prepared.arrays("test")["country"], x[900:, 0], rtol=1e-7)
    # Validation is carved out of the end of train; test stays the last 10%.
    prepared = prepare(open_table(str(tmp_path / "m")), DataOptions(validation=0.1))
    assert prepared.rows == {"train": 810, "validation": 90, "test": 100}
    np.testing.assert_allclose(prepared.arrays("validation")["country"], x[810:900, 0], rtol=1e-7)
    # Unlike the tutorial, the model standardises the mixer's inputs with statistics
    # of the training rows only.
    train = prepared.arrays("train")
    for feature in prepared.features:
        assert feature.mean == pytest.approx(train[feature.name].astype("float64").mean())
        assert feature.variance == pytest.approx(train[feature.name].astype("float64").var())


def test_random_split_is_seeded_deterministic_and_disjoint():
    schema = Schema.from_dict(
        {
            "columns": [{"name": "a", "role": "numerical"}, {"name": "y", "role": "label"}],
            "split": {"kind": "random", "test": 0.2, "seed": 7},
        },
        "test",
    )
    index = np.arange(200_000)
    codes = assign_splits(index, schema, validation=0.1, total_rows=len(index))
    # One code per row, so every row is in exactly one split.
    assert set(np.unique(codes)) == {0, 1, 2}
    fractions = np.bincount(codes) / len(index)
    np.testing.assert_allclose(fractions, [0.72, 0.08, 0.20], atol=0.005)
    # A row's split depends only on its number and the seed: chunking does not matter.
    again = np.concatenate(
        [
            assign_splits(index[i : i + 999], schema, 0.1, len(index))
            for i in range(0, len(index), 999)
        ]
    )
    np.testing.assert_array_equal(codes, again)
    # Test rows do not move when validation is asked for.
    no_val = assign_splits(index, schema, validation=0.0, total_rows=len(index))
    np.testing.assert_array_equal(codes == 2, no_val == 2)
    schema.split.seed = 8
    assert (assign_splits(index, schema, 0.1, len(index)) != codes).mean() > 0.2


def test_poly_functions_and_recorded_crosses(tmp_path):
    generate("poly", tmp_path / "f1", rows=500, function="f1")
    header, values = read_csv_floats(tmp_path / "f1")
    x1, x2, x3, x4, y = values.T
    np.testing.assert_allclose(y, x1**2 + x1 * x2 + x3 * x1 + x4 * x1, rtol=1e-12)
    assert values[:, :4].min() >= -1 and values[:, :4].max() <= 1
    crosses = Schema.load(tmp_path / "f1" / "schema.json").crosses
    assert {"features": ["x1", "x2"], "coefficient": 1.0} in crosses

    generate("poly", tmp_path / "f2", rows=500, function="f2")
    _, values = read_csv_floats(tmp_path / "f2")
    x1, x2, x3, x4, y = values.T
    np.testing.assert_allclose(y, x1**2 + 0.1 * x1 * x2 + x2 * x3 + 0.1 * x3**2, rtol=1e-12)

    schema = generate(
        "poly",
        tmp_path / "r",
        rows=300,
        function="random",
        features=6,
        order=3,
        terms=5,
        seed=3,
        noise=0.0,
    )
    header, values = read_csv_floats(tmp_path / "r")
    assert header == [f"x{i}" for i in range(1, 7)] + ["y"]
    predicted = np.zeros(len(values))
    for term in schema.crosses:
        predicted += term["coefficient"] * np.prod(
            [values[:, int(name[1:]) - 1] for name in term["features"]], axis=0
        )
    np.testing.assert_allclose(values[:, -1], predicted, rtol=1e-9, atol=1e-12)
    assert len(schema.crosses) == 5
    assert all(2 <= len(t["features"]) <= 3 for t in schema.crosses)


def test_ctr_writes_shards_with_criteo_shape(tmp_path):
    schema = generate("ctr", tmp_path / "ctr", rows=2500, vocab_size=5000, shard_rows=1000)
    assert schema.files == ["data-00000.csv", "data-00001.csv", "data-00002.csv"]
    roles = [c.role for c in schema.columns]
    assert roles == ["label"] + ["numerical"] * 13 + ["categorical"] * 26
    assert schema.task == "binary" and schema.crosses
    table = open_table(str(tmp_path / "ctr"))
    chunks = list(table.chunks())
    labels = np.concatenate([c["label"].to_numpy() for c in chunks])
    assert len(labels) == 2500 and set(np.unique(labels)) == {0.0, 1.0}
    c26 = np.concatenate([c["C26"].to_numpy() for c in chunks])
    _, counts = np.unique(c26, return_counts=True)
    # Zipf: one id takes a large share, and a long tail of ids is seen once.
    assert counts.max() > 0.2 * 2500
    assert np.count_nonzero(counts == 1) > 100


def test_streaming_matches_in_memory(tmp_path):
    generate("ctr", tmp_path / "ctr", rows=3000, vocab_size=500, shard_rows=1000)
    table = open_table(str(tmp_path / "ctr"))
    small = prepare(table, DataOptions(validation=0.1))
    streamed = prepare(table, DataOptions(validation=0.1, memory_budget=0))
    assert small.rows == streamed.rows
    assert small.features == streamed.features
    for split in ("train", "validation", "test"):
        a, b = small.arrays(split), streamed.arrays(split)
        np.testing.assert_array_equal(a["C3"], b["C3"])
        np.testing.assert_array_equal(a["label"], b["label"])
    batches = list(dataset(streamed, "test", 256))
    assert sum(len(label) for _, label in batches) == small.rows["test"]
    assert [len(label) for _, label in batches[:-1]] == [256] * (len(batches) - 1)
    expected = small.arrays("test")["I2"]
    got = np.concatenate([features["I2"].numpy() for features, _ in batches])
    np.testing.assert_array_equal(got, expected)


def write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_csv_roles_are_inferred_and_overridable(tmp_path):
    rows = "".join(f"{i % 3},{'abc'[i % 3]},{i * 0.5},{i % 2}\n" for i in range(40))
    path = write_csv(tmp_path / "t.csv", "store,city,price,clicked\n" + rows)
    schema = open_table(path, label="clicked").schema
    assert [(c.name, c.role, c.dtype) for c in schema.columns] == [
        ("store", "numerical", "float32"),
        ("city", "categorical", "string"),
        ("price", "numerical", "float32"),
        ("clicked", "label", "float32"),
    ]
    assert schema.task == "binary"
    schema = open_table(path, label="price", categorical="store").schema
    assert schema.columns[0].role == "categorical" and schema.columns[0].dtype == "int64"
    assert schema.task == "regression"
    schema = open_table(path, label="clicked", numerical="store", task="regression").schema
    assert schema.columns[0].role == "numerical" and schema.task == "regression"


def test_vocabulary_and_statistics_come_from_train_only(tmp_path):
    n = 2000
    cities = [f"c{i % 50}" for i in range(n)]
    rows = "".join(f"{cities[i]},{i},{i % 7}\n" for i in range(n))
    path = write_csv(tmp_path / "t.csv", "city,amount,y\n" + rows)
    prepared = prepare(open_table(path, label="y", numerical="amount"))
    train, test = prepared.arrays("train"), prepared.arrays("test")
    city, amount = prepared.features
    assert set(city.vocabulary) == set(train["city"])
    assert city.num_oov == 1
    np.testing.assert_allclose(amount.mean, train["amount"].astype(np.float64).mean())
    np.testing.assert_allclose(amount.variance, train["amount"].astype(np.float64).var(), rtol=1e-9)
    assert prepared.rows["train"] + prepared.rows["test"] == n
    assert len(test["y"]) == prepared.rows["test"]


def test_large_or_chosen_features_are_hashed(tmp_path):
    rows = "".join(f"u{i},g{i % 3},{i % 5}\n" for i in range(500))
    path = write_csv(tmp_path / "t.csv", "user,group,y\n" + rows)
    table = open_table(path, label="y", categorical="user")  # distinct in every row: an id
    prepared = prepare(table, DataOptions(hash_threshold=100))
    user, group = prepared.features
    assert user.hash_buckets == 100 and user.vocabulary is None
    assert group.vocabulary is not None and len(group.vocabulary) == 3
    prepared = prepare(table, DataOptions(hash_buckets=parse_hash_buckets("group=16")))
    assert prepared.features[1].hash_buckets == 16
    with pytest.raises(DcnError, match="not a feature"):
        prepare(open_table(path, label="y"), DataOptions(hash_buckets={"nope": 3}))
    with pytest.raises(DcnError, match="NAME=N"):
        parse_hash_buckets("group:16")


def write_ml100k(directory: Path) -> Path:
    directory.mkdir()
    (directory / "u.user").write_text(
        "1|24|M|technician|85711\n2|53|F|other|94043\n3|17|M|student|32067\n"
    )
    (directory / "u.data").write_text(
        "1\t242\t3\t881250949\n2\t302\t4\t891717742\n3\t242\t1\t878887116\n1\t51\t2\t880606923\n"
    )
    flags = ["0"] * 19
    flags[5] = flags[8] = "1"  # Comedy, Drama
    (directory / "u.item").write_text(
        f"242|Kolya (1996)|24-Jan-1997||x|{'|'.join(flags)}\n51|Legends (1994)|||x|{'0|' * 18}0\n"
    )
    return directory


def test_movielens_100k_directory_and_zip(tmp_path):
    directory = write_ml100k(tmp_path / "ml-100k")
    with zipfile.ZipFile(tmp_path / "ml-100k.zip", "w") as archive:
        for name in ("u.data", "u.user", "u.item"):
            archive.write(directory / name, f"ml-100k/{name}")
    for source in (directory, tmp_path / "ml-100k.zip"):
        table = open_table(str(source))
        (chunk,) = list(table.chunks())
        assert [c.name for c in table.schema.features] == [
            "movie_id",
            "user_id",
            "user_zip_code",
            "user_occupation_text",
            "user_gender",
            "bucketized_user_age",
        ]
        assert table.schema.label == "user_rating"
        assert chunk["movie_id"].to_pylist() == ["242", "302", "242", "51"]
        assert chunk["user_gender"].to_pylist() == [1, 0, 1, 1]
        assert chunk["bucketized_user_age"].to_pylist() == [18, 50, 1, 18]
        assert chunk["user_rating"].to_pylist() == [3.0, 4.0, 1.0, 2.0]
        # The genres are read (a movie not in u.item has none), but are no feature
        # unless --list movie_genres asks.
        assert chunk["movie_genres"].to_pylist() == ["Comedy|Drama", "", "Comedy|Drama", ""]
    listed = open_table(str(directory), lists="movie_genres").schema
    assert {c.name: c.separator for c in listed.features}["movie_genres"] == "|"


def test_age_buckets_match_tfds():
    assert [bucketize_age(a) for a in (7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73)] == [
        1,
        1,
        18,
        18,
        25,
        25,
        35,
        35,
        45,
        45,
        50,
        50,
        56,
        56,
    ]


def test_movielens_1m_layout(tmp_path):
    directory = tmp_path / "ml-1m"
    directory.mkdir()
    (directory / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (directory / "ratings.dat").write_text("1::1193::5::978300760\n2::661::3::978302109\n")
    (directory / "movies.dat").write_text("1193::One Flew (1975)::Drama\n")
    (chunk,) = list(open_table(str(directory)).chunks())
    assert chunk["user_occupation_text"].to_pylist() == ["K-12 student", "self-employed"]
    assert chunk["user_gender"].to_pylist() == [0, 1]
    assert chunk["bucketized_user_age"].to_pylist() == [1, 56]
    assert chunk["movie_id"].to_pylist() == ["1193", "661"]
    assert chunk["movie_genres"].to_pylist() == ["Drama", ""]


CRITEO_ROWS = [
    "1\t5\t\t3" + "\t1" * 10 + "\t68fd1e64\t" + "\t".join(["a"] * 25),
    "0\t\t2\t1" + "\t0" * 10 + "\t\t" + "\t".join(["b"] * 25),
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_criteo_tsv_with_empty_fields(tmp_path, gz):
    text = "\n".join(CRITEO_ROWS) + "\n"
    path = tmp_path / ("day_0.gz" if gz else "train.txt")
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    table = open_table(str(path) if not gz else f"criteo:{path}")
    assert table.schema.task == "binary"
    (chunk,) = list(table.chunks())
    assert chunk["label"].to_pylist() == [1.0, 0.0]
    assert chunk["I1"].to_pylist() == [5.0, 0.0] and chunk["I2"].to_pylist() == [0.0, 2.0]
    assert chunk["C1"].to_pylist() == ["68fd1e64", ""]


def test_tfds_movielens_through_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    from dcn_cli.data import movielens

    monkeypatch.setattr(movielens, "_online", lambda host, timeout=5.0: True)  # no real look
    with tfds.testing.mock_data(num_examples=30):
        table = open_table("tfds:movielens/100k-ratings")
        (chunk,) = list(table.chunks())
        prepared = prepare(table)
    assert len(chunk["user_rating"]) == 30
    assert set(chunk.column_names) == {c.name for c in table.schema.columns}
    assert isinstance(chunk["movie_id"].to_pylist()[0], str)
    assert chunk["bucketized_user_age"].type == "int64"
    assert sum(prepared.rows.values()) == 30
    assert [f.name for f in prepared.features] == [c.name for c in table.schema.features]


def _table_rows(data, **kwargs):
    return prepare(open_table(data, **kwargs))


BAD_INPUT = [
    # (files to write, --data, open_table kwargs, message)
    ({}, "missing.csv", {"label": "y"}, r"missing.csv: no such file or directory"),
    ({"empty.csv": ""}, "empty.csv", {"label": "y"}, r"empty.csv: empty file"),
    ({"t.csv": "a,b\n1,2\n"}, "t.csv", {"label": "y"}, r"t.csv: no label column 'y'"),
    ({"t.csv": "a,y\n1,2\n3\n"}, "t.csv", {"label": "y"}, r"t.csv:3: expected 2 fields, found 1"),
    (
        {"t.csv": "a,y\n1,2\n2,3\nx,4\n"},
        "t.csv",
        {"label": "y", "numerical": "a"},
        r"t.csv:4: column 'a': 'x' is not a number",
    ),
    (
        {"t.csv": "a,y\n1,0\n2,1\n3,2\n"},
        "t.csv",
        {"label": "y", "task": "binary"},
        r"t.csv:4: label 'y' is 2; a binary label must be 0 or 1",
    ),
    (
        {"t.csv": "a,y\n1,good\n"},
        "t.csv",
        {"label": "y"},
        r"t.csv:2: column 'y': 'good' is not a number",
    ),
    (
        {
            "d/schema.json": json.dumps(
                {
                    "columns": [{"name": "a", "role": "numerical"}, {"name": "y", "role": "label"}],
                    "files": ["data.csv"],
                }
            ),
            "d/data.csv": "a,b,y\n1,2,3\n",
        },
        "d",
        {},
        r"data.csv:1: header a,b,y contradicts the schema",
    ),
    ({"d/schema.json": "{oops"}, "d", {}, r"schema.json:1:[0-9]+: not valid JSON"),
    (
        {"d/schema.json": json.dumps({"columns": [{"name": "a", "role": "feature"}]})},
        "d",
        {},
        r"schema.json: column 'a' has unknown role 'feature'",
    ),
    ({"d/x.txt": "hi"}, "d", {}, r"d: not a dataset directory"),
    ({"t.csv": "a,y\n1,2\n"}, "t.csv", {}, r"t.csv: a CSV file needs --label COL"),
]


@pytest.mark.parametrize(
    "files, data, kwargs, message",
    BAD_INPUT,
    ids=[case[3].split(":")[-1].strip()[:30] for case in BAD_INPUT],
)
def test_bad_input_names_the_file(tmp_path, monkeypatch, files, data, kwargs, message):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    with pytest.raises(DcnError, match=message):
        _table_rows(data, **kwargs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "spiral", "--out", "d"], "Error: the dataset kind must be one of mixer"),
        (["generate", "mixer", "--out", "d", "--rows", "-3"], "Error: --rows must be a positive"),
        (
            ["generate", "poly", "--out", "d", "--function", "f9"],
            "Error: --function must be one of f1",
        ),
    ],
)
def test_generate_rejects_bad_arguments(runner, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == message or result.output.startswith(message)
    assert "Traceback" not in result.output
    assert not Path("d").exists()


def test_generate_command_writes_a_readable_directory(runner, tmp_path):
    out = tmp_path / "poly"
    result = runner.invoke(
        app,
        ["generate", "poly", "--out", str(out), "--rows", "200", "--function", "f2", "--seed", "5"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 200 poly rows" in result.output
    assert prepare(open_table(str(out))).rows["train"] > 100
    # Running again replaces the dataset whole, and leaves no temporary directories.
    result = runner.invoke(app, ["generate", "poly", "--out", str(out), "--rows", "100"])
    assert result.exit_code == 0, result.output
    assert sum(prepare(open_table(str(out))).rows.values()) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "poly"]


def test_generate_refuses_to_replace_a_non_dataset_directory(runner, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["generate", "mixer", "--out", str(tmp_path / "mine")])
    assert result.exit_code == 1
    assert "holds more than a dataset dcn generate wrote" in result.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


ML100K = os.environ.get("DCN_ML100K")


@pytest.mark.skipif(not ML100K, reason="set DCN_ML100K to a real ml-100k directory")
def test_real_movielens_100k_counts():
    table = open_table(ML100K)
    (chunk,) = list(table.chunks())
    assert len(chunk["user_rating"]) == 100_000
    sizes = {name: len(set(chunk[name].tolist())) for name in chunk if name != "user_rating"}
    assert sizes == {
        "movie_id": 1682,
        "user_id": 943,
        "user_zip_code": 795,
        "user_occupation_text": 21,
        "user_gender": 2,
        "bucketized_user_age": 7,
    }


def test_shuffled_batches_cover_every_row_once_in_a_new_order_each_epoch(tmp_path):
    generate("poly", tmp_path / "p", rows=1000, function="f1")
    prepared = prepare(open_table(str(tmp_path / "p")))
    expected = np.sort(prepared.arrays("train")["x1"])

    def epoch(ds):
        batches = list(ds)
        assert all(len(label) == 64 for _, label in batches[:-1])
        return np.concatenate([features["x1"].numpy() for features, _ in batches])

    ds = dataset(prepared, "train", 64, shuffle_seed=3)
    first, second = epoch(ds), epoch(ds)
    np.testing.assert_array_equal(np.sort(first), expected)
    np.testing.assert_array_equal(np.sort(second), expected)
    assert not np.array_equal(first, second)  # reshuffled every epoch
    again = dataset(prepared, "train", 64, shuffle_seed=3)
    np.testing.assert_array_equal(epoch(again), first)  # seeded
    assert ds.cardinality().numpy() == -(-prepared.rows["train"] // 64)
