"""The data layer at scale: pyarrow readers, Parquet, the preparation cache, the encoder,
the streamed input, the truth side files, and imports that flow one way."""

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import clicks

from dcn_cli.data import delimited
from dcn_cli.data.generate import generate
from dcn_cli.data.prepare import DataOptions, prepare
from dcn_cli.data.sources import open_table
from dcn_cli.errors import DcnError


@pytest.fixture
def small_blocks(monkeypatch):
    """pyarrow reads 2 KiB pieces in 1 KiB blocks, so a small file spans many of them."""
    monkeypatch.setattr(delimited, "BLOCK_BYTES", 1024)
    monkeypatch.setattr(delimited, "PIECE_BYTES", 2048)


def _rows(table):
    chunks = list(table.chunks())
    return pa.concat_tables(chunks)


def test_fast_path_reads_what_the_exact_reader_reads(tmp_path, small_blocks):
    generate("ctr", tmp_path / "ctr", rows=700, vocab_size=300, shard_rows=300)
    table = open_table(str(tmp_path / "ctr"))
    fast = _rows(table)
    exact = pa.concat_tables(
        [c for p in table.files for c in delimited._exact_chunks(table.schema, p, False)]
    )
    assert fast.num_rows == 700 and len(list(table.chunks())) > 3
    assert fast.equals(exact)


@pytest.mark.parametrize(
    "text",
    [
        "a,b,y\r\n" + "".join(f"{i},{i * 0.5},{i % 2}\r\n" for i in range(300)),
        "a,b,y\n" + "\n".join(f"{i},{i * 0.5},{i % 2}" for i in range(300)),  # no last newline
        "\ufeffa,b,y\n" + "".join(f"{i},{i * 0.5},{i % 2}\n" for i in range(300)),
        "a,b,y\n" + "".join(f"{i},{i * 0.5},{i % 2}\n\n" for i in range(300)),  # blank lines
    ],
    ids=["crlf", "no-final-newline", "bom", "blank-lines"],
)
def test_line_endings_and_marks_read_alike_by_both_readers(tmp_path, small_blocks, text):
    (tmp_path / "t.csv").write_text(text, encoding="utf-8", newline="")
    table = open_table(str(tmp_path / "t.csv"), label="y", numerical="a,b")
    fast = _rows(table)
    exact = pa.concat_tables(list(delimited._exact_chunks(table.schema, table.files[0], False)))
    assert fast.equals(exact) and fast["a"].to_pylist() == list(range(300))
    assert len(list(delimited._fast_chunks(table.schema, table.files[0], False))) >= 2


def test_a_header_only_shard_among_others(tmp_path, small_blocks):
    generate("ctr", tmp_path / "ctr", rows=300, vocab_size=50, shard_rows=100)
    header = (tmp_path / "ctr" / "data-00001.csv").read_text().splitlines()[0]
    (tmp_path / "ctr" / "data-00001.csv").write_text(header + "\n")
    rows = _rows(open_table(str(tmp_path / "ctr")))
    assert rows.num_rows == 200


def test_an_integer_beyond_64_bits_is_an_error_naming_its_line(tmp_path):
    import json

    directory = tmp_path / "d"
    directory.mkdir()
    lines = ["uid,y"] + [f"{i},{i % 2}" for i in range(20)] + ["12345678901234567890,1"]
    (directory / "data.csv").write_text("\n".join(lines) + "\n")
    schema = {
        "columns": [
            {"name": "uid", "role": "categorical", "dtype": "int64"},
            {"name": "y", "role": "label"},
        ],
        "files": ["data.csv"],
    }
    (directory / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(DcnError, match=r"data.csv:22: column 'uid': 12345678901234567890 does"):
        _rows(open_table(str(directory)))
    # Inferred from a CSV, such ids are text.
    table = open_table(str(directory / "data.csv"), label="y", categorical="uid")
    assert table.schema.columns[0].dtype == "string"
    assert _rows(table)["uid"].to_pylist()[-1] == "12345678901234567890"


def test_gzip_pieces_join_the_lines_they_cut(tmp_path, small_blocks):
    """A gzip stream cannot seek back: the line cut between pieces is carried over."""
    import gzip

    generate("ctr", tmp_path / "ctr", rows=300, vocab_size=50)
    plain = tmp_path / "ctr" / "data-00000.csv"
    packed = tmp_path / "ctr" / "data-00000.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    table = open_table(str(tmp_path / "ctr"))
    chunks = list(delimited._fast_chunks(table.schema, packed, False))
    assert len(chunks) > 10  # many pieces
    assert pa.concat_tables(chunks).equals(_rows(table))


@pytest.mark.parametrize(
    "bad, message",
    [
        ("7,abc,1", "t.csv:40: column 'b': 'abc' is not a number"),
        ("7,1e39,1", "t.csv:40: column 'b': '1e39' is not a finite float32 number"),
        ("7,nan,1", "t.csv:40: column 'b': 'nan' is not a finite float32 number"),
        ("7,,1", "t.csv:40: column 'b' is empty; the first rows had no empty cell there"),
        ("7,2", "t.csv:40: expected 3 fields, found 2"),
        ("7,2,5", "t.csv:40: label 'y' is 5; a binary label must be 0 or 1"),
    ],
)
def test_a_bad_line_past_the_first_blocks_is_named(
    tmp_path, small_blocks, monkeypatch, bad, message
):
    monkeypatch.setattr(delimited, "SAMPLE_ROWS", 20)  # line 40 is past the rows roles come from
    lines = ["a,b,y"] + [f"{i},{i * 0.5},{i % 2}" for i in range(1, 200)]
    lines[39] = bad  # line 40 of the file, past the first 1 KiB block
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    table = open_table(str(tmp_path / "t.csv"), label="y", numerical="a,b", task="binary")
    with pytest.raises(DcnError) as err:
        _rows(table)
    assert message in str(err.value)


def test_what_pyarrow_refuses_but_is_fine_is_read_once(tmp_path, small_blocks):
    """Spaces around a number: pyarrow gives up mid-file, the exact reader goes on; no row twice."""
    lines = ["a,b,y"] + [f"{i},{i * 0.5},{i % 2}" for i in range(1, 200)]
    lines[150] = "150, 75.0 ,0"
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    rows = _rows(open_table(str(tmp_path / "t.csv"), label="y", numerical="a,b"))
    assert rows["a"].to_pylist() == list(range(1, 200))
    assert rows["b"].to_pylist()[149] == 75.0


def _parquet(path: Path, n=300):
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "user": pa.array([f"u{i % 7}" for i in range(n)]),
            "shop": pa.array((np.arange(n) % 5).astype(np.int32)),
            "price": pa.array(rng.random(n)),
            "clicked": pa.array((np.arange(n) % 3 == 0).astype(np.int64)),
        }
    )
    pq.write_table(table, path, row_group_size=100)
    return table


def test_parquet_file_roles_values_and_training(tmp_path, runner):
    from dcn_cli.commands import app

    written = _parquet(tmp_path / "clicks.parquet")
    table = open_table(str(tmp_path / "clicks.parquet"), label="clicked", categorical="shop")
    roles = {c.name: (c.role, c.dtype) for c in table.schema.columns}
    assert roles == {
        "user": ("categorical", "string"),
        "shop": ("categorical", "int64"),
        "price": ("numerical", "float32"),
        "clicked": ("label", "float32"),
    }
    assert table.schema.task == "binary"
    rows = _rows(table)
    assert rows["user"].to_pylist() == written["user"].to_pylist()
    np.testing.assert_allclose(rows["price"].to_numpy(), written["price"].to_numpy(), rtol=1e-6)
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "clicks.parquet"),
            "--label",
            "clicked",
            "--epochs",
            "1",
            "--embedding-dim",
            "2",
            "--deep-layers",
            "4",
            "--out",
            str(tmp_path / "ckpt"),
        ],
    )
    assert result.exit_code == 0, result.output


def test_parquet_bad_values_name_the_row(tmp_path, monkeypatch):
    table = pa.table({"x": pa.array([1.0, None, 3.0]), "y": pa.array([0, 1, 0])})
    pq.write_table(table, tmp_path / "a.parquet")
    monkeypatch.setattr(delimited, "SAMPLE_ROWS", 1)  # row 2 is past the rows roles come from
    with pytest.raises(DcnError, match=r"a.parquet: row 2: column 'x' has no value"):
        _rows(open_table(str(tmp_path / "a.parquet"), label="y"))
    table = pa.table({"x": pa.array([1.0, float("inf"), 3.0]), "y": pa.array([0, 1, 0])})
    pq.write_table(table, tmp_path / "b.parquet")
    with pytest.raises(DcnError, match=r"b.parquet: row 2: column 'x': inf is not a finite"):
        _rows(open_table(str(tmp_path / "b.parquet"), label="y"))
    (tmp_path / "c.parquet").write_text("not parquet")
    with pytest.raises(DcnError, match=r"c.parquet: not a readable Parquet file"):
        open_table(str(tmp_path / "c.parquet"), label="y")


def test_schema_directory_of_parquet_shards_matches_csv(tmp_path):
    generate("ctr", tmp_path / "csv", rows=500, vocab_size=100, shard_rows=200)
    csv_table = open_table(str(tmp_path / "csv"))
    parquet_dir = tmp_path / "pq"
    parquet_dir.mkdir()
    schema = csv_table.schema
    files = []
    for i, shard in enumerate(csv_table.shards):
        files.append(f"part-{i}.parquet")
        pq.write_table(pa.concat_tables(list(shard())), parquet_dir / files[-1])
    schema.files, schema.truth = files, []
    schema.save(parquet_dir / "schema.json")
    a = prepare(open_table(str(tmp_path / "csv")))
    b = prepare(open_table(str(parquet_dir)))
    assert a.rows == b.rows and a.features == b.features


# ---------------------------------------------------------------- the cache


def test_second_prepare_reads_the_cache_and_a_changed_file_is_learnt_again(tmp_path):
    generate("ctr", tmp_path / "ctr", rows=800, vocab_size=200, shard_rows=300)
    first = prepare(open_table(str(tmp_path / "ctr")), DataOptions(memory_budget=0))
    assert not first.cached and list((tmp_path / "ctr" / ".dcn-cache").iterdir())
    second = prepare(open_table(str(tmp_path / "ctr")), DataOptions(memory_budget=0))
    assert second.cached
    assert (second.rows, second.features, second.shard_rows) == (
        first.rows,
        first.features,
        first.shard_rows,
    )
    # An option that changes the result is part of the key.
    other = prepare(open_table(str(tmp_path / "ctr")), DataOptions(validation=0.2))
    assert not other.cached and other.rows != first.rows
    # A file rewritten (another modification time) is learnt again.
    shard = tmp_path / "ctr" / "data-00001.csv"
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    assert not prepare(open_table(str(tmp_path / "ctr")), DataOptions(memory_budget=0)).cached


def test_in_memory_rows_from_the_cache_are_the_same(tmp_path):
    generate("ctr", tmp_path / "ctr", rows=600, vocab_size=100)
    first = prepare(open_table(str(tmp_path / "ctr")), DataOptions(validation=0.1))
    second = prepare(open_table(str(tmp_path / "ctr")), DataOptions(validation=0.1))
    assert second.cached and second.in_memory
    for split in ("train", "validation", "test"):
        assert first.memory[split].equals(second.memory[split])


def test_cache_goes_to_the_user_cache_when_the_data_is_read_only(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    generate("ctr", tmp_path / "ctr", rows=300, vocab_size=50)
    monkeypatch.setenv("DCN_CACHE_DIR", str(tmp_path / "cache"))
    os.chmod(tmp_path / "ctr", 0o555)
    try:
        prepare(open_table(str(tmp_path / "ctr")))
        assert prepare(open_table(str(tmp_path / "ctr"))).cached
    finally:
        os.chmod(tmp_path / "ctr", 0o755)
    assert not (tmp_path / "ctr" / ".dcn-cache").exists()
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_the_cache_falls_back_when_the_directory_is_not_writable(tmp_path, monkeypatch):
    """The same decision as above, checked even as root: os.access says no."""
    from dcn_cli.data import cache

    generate("ctr", tmp_path / "ctr", rows=300, vocab_size=50)
    monkeypatch.setenv("DCN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache.os, "access", lambda path, mode: False)
    table = open_table(str(tmp_path / "ctr"))
    path = cache.path_for(table, DataOptions().keyed())
    assert path.parent == tmp_path / "cache"


def test_a_damaged_cache_is_learnt_again(tmp_path):
    generate("ctr", tmp_path / "ctr", rows=300, vocab_size=50)
    prepare(open_table(str(tmp_path / "ctr")))
    (cache,) = (tmp_path / "ctr" / ".dcn-cache").iterdir()
    cache.write_text('{"features": [{"name": 3}]')
    again = prepare(open_table(str(tmp_path / "ctr")))
    assert not again.cached
    assert prepare(open_table(str(tmp_path / "ctr"))).cached  # written anew


# ---------------------------------------------------------------- encoding and streaming


def _model(prepared, **settings):
    from dcn_cli import backend
    from dcn_cli.model.config import ModelConfig
    from dcn_cli.model.factory import build_model

    keras = backend.load()
    config = ModelConfig(features=prepared.features, task=prepared.task, **settings)
    keras.utils.set_random_seed(0)
    return build_model(config), config


def test_encoder_gives_the_models_own_ids(tmp_path):
    """Arrow's lookups and the model's layers agree: vocabularies, unseen values, hashing."""
    import tensorflow as tf

    from dcn_cli.model.factory import split_model
    from dcn_cli.train.pipeline import Encoder

    generate("ctr", tmp_path / "ctr", rows=1000, vocab_size=3000)
    prepared = prepare(
        open_table(str(tmp_path / "ctr")),
        DataOptions(hash_threshold=50, hash_buckets={"C2": 7}),
    )
    kinds = {f.name: f.hash_buckets is not None for f in prepared.features if f.kind != "numerical"}
    assert any(kinds.values()) and not all(kinds.values())  # both kinds are tested
    model, config = _model(prepared)
    encoder_model, _ = split_model(model, config)
    test = prepared.memory["test"]  # values the vocabularies never saw are among them
    ids, numbers, _, _ = Encoder(config.features).packed(test, prepared.label)
    ours = Encoder(config.features).unpacked(tf.constant(ids), tf.constant(numbers))
    raw = {f.name: tf.constant(prepared.arrays("test")[f.name]) for f in config.features}
    theirs = encoder_model(raw)
    assert any((t.numpy() == 0).any() for t in theirs if t.dtype == tf.int64)  # OOV seen
    for feature, a, b in zip(config.features, ours, theirs, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=feature.name)


@pytest.mark.parametrize("dtype, token", [("int64", -1), ("string", "[UNK]")])
def test_keras_reserved_token_as_the_commonest_value(tmp_path, dtype, token):
    """Keras strips its OOV token from a vocabulary; the encoder must agree with it."""
    import tensorflow as tf

    from dcn_cli.model.factory import split_model
    from dcn_cli.train.pipeline import Encoder

    values = [token] * 50 + (list(range(10)) * 3 if dtype == "int64" else list("abcdefghij") * 3)
    lines = ["g,x,y"] + [f"{v},{i * 0.1},{i % 2}" for i, v in enumerate(values)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    prepared = prepare(open_table(str(tmp_path / "t.csv"), label="y", categorical="g"))
    (group,) = [f for f in prepared.features if f.name == "g"]
    assert group.dtype == dtype and token not in group.vocabulary
    model, config = _model(prepared)
    encoder_model, _ = split_model(model, config)
    rows = prepared.memory["train"]
    ours = Encoder(config.features).column(rows, "g")
    raw = {f.name: tf.constant(prepared.arrays("train")[f.name]) for f in config.features}
    theirs = encoder_model(raw)[[f.name for f in config.features].index("g")]
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert (ours == 0).sum() >= 1


def _streamed(tmp_path, rows=2000, shard_rows=400):
    generate("ctr", tmp_path / "ctr", rows=rows, vocab_size=200, shard_rows=shard_rows)
    prepared = prepare(open_table(str(tmp_path / "ctr")), DataOptions(memory_budget=0))
    model, config = _model(prepared)
    from dcn_cli.train.pipeline import Encoder

    return prepared, Encoder(config.features), config


def _column(batches, config, name="I1"):
    j = [f.name for f in config.features].index(name)
    return np.concatenate([x[j].numpy().reshape(-1) for x, _, _ in batches])


def test_streamed_epoch_holds_every_row_once_mixed_across_shards(tmp_path, monkeypatch):
    from dcn_cli.train import pipeline

    monkeypatch.setattr(pipeline, "SHUFFLE_ROWS", 300)
    prepared, encoder, config = _streamed(tmp_path)
    train = prepared.arrays("train")
    epoch0 = list(pipeline.streamed_batches(prepared, encoder, "train", 128, seed=3, epoch=0))
    again = list(pipeline.streamed_batches(prepared, encoder, "train", 128, seed=3, epoch=0))
    epoch1 = list(pipeline.streamed_batches(prepared, encoder, "train", 128, seed=3, epoch=1))
    assert [len(y) for _, y, _ in epoch0[:-1]] == [128] * (len(epoch0) - 1)
    got = _column(epoch0, config, "I1")
    np.testing.assert_array_equal(np.sort(got), np.sort(train["I1"]))
    np.testing.assert_array_equal(got, _column(again, config, "I1"))  # same seed, same order
    assert not np.array_equal(got, _column(epoch1, config, "I1"))  # a new order each epoch
    # The first batch holds rows of several shards: row numbers tell (I1..I13 + label differ).
    key = np.stack([_column(epoch0[:1], config, f"I{i}") for i in (1, 2, 3, 4)], 1)
    shards_seen = set()
    for shard in range(len(prepared.shard_rows)):
        rows = pa.concat_tables(list(prepared.chunks("train", [shard])))
        mine = {tuple(r) for r in np.stack([rows[f"I{i}"].to_numpy() for i in (1, 2, 3, 4)], 1)}
        if any(tuple(r) in mine for r in key):
            shards_seen.add(shard)
    assert len(shards_seen) >= 2 and len(prepared.shard_rows) == 5


@pytest.mark.parametrize("shard_rows", [400, 2000], ids=["by-file", "by-row"])
def test_each_pipeline_reads_its_own_share_in_equal_padded_steps(tmp_path, shard_rows):
    from dcn_cli.train.pipeline import pipeline_rows, streamed_batches

    prepared, encoder, config = _streamed(tmp_path, shard_rows=shard_rows)
    train = prepared.arrays("train")
    seen = []
    for pipeline in range(3):
        batches = list(
            streamed_batches(
                prepared, encoder, "train", 100, seed=1, pipeline=pipeline, pipelines=3, batches=9
            )
        )
        assert len(batches) == 9 and all(y.shape == (100, 1) for _, y, _ in batches)
        weights = np.concatenate([w.numpy() for _, _, w in batches])
        rows = _column(batches, config)[weights == 1]
        assert len(rows) == pipeline_rows(prepared, "train", pipeline, 3)
        seen.append(rows)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(train["I1"]))


def test_streamed_and_in_memory_training_agree(tmp_path, monkeypatch):
    """The same model trained on the same rows, held or streamed: the same test loss, nearly."""
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.train.run import TrainSettings, train

    clicks(tmp_path / "clicks", rows=1500, shard_rows=500)
    settings = TrainSettings(epochs=1, batch_size=256)
    model = {"deep_layers": [8], "dropout": 0.0}
    data = DataSpec(str(tmp_path / "clicks"))
    held = train(model, data, settings, tmp_path / "a", tensorboard=False)
    monkeypatch.setenv("DCN_MEMORY_BUDGET_MB", "0")
    assert not data.prepare().in_memory
    streamed = train(model, data, settings, tmp_path / "b", tensorboard=False)
    assert held.metrics["test_rows"] == streamed.metrics["test_rows"]
    assert abs(held.metrics["logloss"] - streamed.metrics["logloss"]) < 0.05


# ---------------------------------------------------------------- truth


@pytest.mark.slow  # 40 features to trace: 9-12 s; .ci/run runs -m slow too
def test_ctr_truth_side_files_and_bayes_optimal_figures(tmp_path, runner):
    import json

    from helpers import exact_auc

    from dcn_cli.commands import app

    schema = generate("ctr", tmp_path / "ctr", rows=1200, vocab_size=100, shard_rows=500)
    assert schema.truth == ["truth-00000.csv", "truth-00001.csv", "truth-00002.csv"]
    assert "probability" not in [c.name for c in schema.columns]
    lines = (tmp_path / "ctr" / "truth-00001.csv").read_text().splitlines()
    assert lines[0] == "probability" and len(lines) == 501
    assert all(0 < float(p) < 1 for p in lines[1:])
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "ctr"),
            "--epochs",
            "1",
            "--embedding-dim",
            "2",
            "--deep-layers",
            "4",
            "--out",
            str(tmp_path / "ckpt"),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "ckpt"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert 0.5 < metrics["bayes_auc"] < 1 and metrics["bayes_logloss"] > 0
    assert metrics["rows"] > 200
    # exact_auc against the pairwise definition.
    rng = np.random.default_rng(1)
    labels, scores = rng.integers(0, 2, 60), rng.integers(0, 5, 60).astype(float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert exact_auc(labels, scores) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_evaluate_learns_nothing_from_the_data_again(tmp_path, monkeypatch):
    """dcn evaluate encodes with the checkpoint's vocabularies: no preparation pass."""
    from dcn_cli.data import prepare as prep
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.inspect.evaluate import evaluate
    from dcn_cli.train.run import TrainSettings, train

    clicks(tmp_path / "clicks", rows=800)
    settings = TrainSettings(epochs=1, batch_size=256)
    result = train(
        {"deep_layers": [8]},
        DataSpec(str(tmp_path / "clicks")),
        settings,
        tmp_path / "ckpt",
        tensorboard=False,
    )

    def refuse(*args, **kwargs):
        raise AssertionError("evaluate ran a preparation pass")

    monkeypatch.setattr(prep, "_learn", refuse)
    monkeypatch.setattr(prep, "prepare", refuse)
    metrics = evaluate(tmp_path / "ckpt")
    assert metrics["rows"] == result.metrics["test_rows"]
    assert metrics["auc"] == pytest.approx(result.metrics["auc"], abs=1e-6)


def test_a_damaged_truth_file_is_one_error(tmp_path):
    from dcn_cli.data.truth import bayes_optimal

    generate("ctr", tmp_path / "ctr", rows=300, vocab_size=50)
    table = open_table(str(tmp_path / "ctr"))
    truth = tmp_path / "ctr" / "truth-00000.csv"
    lines = truth.read_text().splitlines()
    truth.write_text("\n".join(lines[:5] + ["abc"] + lines[6:]) + "\n")
    with pytest.raises(DcnError, match=r"truth-00000.csv: not a truth file of 'probability'"):
        bayes_optimal(table, 0.0)
    truth.unlink()
    with pytest.raises(DcnError, match=r"truth-00000.csv: no such file"):
        bayes_optimal(table, 0.0)


def test_parquet_label_must_hold_numbers(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": ["a", "b"]}), tmp_path / "t.parquet")
    with pytest.raises(DcnError, match=r"t.parquet: label 'y' holds string; a label must"):
        open_table(str(tmp_path / "t.parquet"), label="y")


# ---------------------------------------------------------------- imports
