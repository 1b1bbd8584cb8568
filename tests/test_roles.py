"""Column roles on a click log as users bring it: inferred, shown, steered, never silent."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dcn_cli.data.infer import infer, looks_like_codes
from dcn_cli.data.prepare import DataOptions, prepare
from dcn_cli.data.sources import open_table

ROWS = 400


def click_log(path, rows: int = ROWS, stray_at: int | None = None):
    """A CSV shaped like Avazu's: a row id, integer codes, hashed text, counts with gaps,
    prices and a label; ``stray_at``: the data row whose price is ``N/A``."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "click", "C1", "site", "visits", "price"])
        for i in range(rows):
            code = int(rng.choice([1005, 1002, 1010]))
            visits = "" if i % 7 == 0 else str(int(rng.geometric(0.2)) - 1)  # a count
            price = "N/A" if i == stray_at else f"{rng.uniform(1, 50):.2f}"
            site = f"{int(rng.integers(0, 30)):08x}"
            click = int(rng.random() < (0.4 if code == 1005 else 0.1))
            out.writerow([10**18 + 7919 * i, click, code, site, visits, price])
    return path


def roles(table) -> dict[str, tuple[str, str]]:
    return {c.name: (c.role, c.dtype) for c in table.schema.columns}


def test_roles_are_inferred_as_a_user_would_give_them(tmp_path):
    table = open_table(str(click_log(tmp_path / "log.csv")), label="click")
    assert roles(table) == {
        "id": ("ignore", "string"),  # distinct in every row: a row id
        "click": ("label", "float32"),
        "C1": ("categorical", "int64"),  # three spread-out integers: codes
        "site": ("categorical", "string"),
        "visits": ("numerical", "float32"),  # counts from 0, some empty
        "price": ("numerical", "float32"),
    }
    assert table.notes == [
        "column 'id' looks like a row id (400 distinct values in 400 rows): ignored; "
        "give --categorical id to use it",
        "integer column(s) C1 look like category codes: read as categorical; give "
        "--numerical C1 (or some of them) to read them as numbers",
    ]
    assert [c.name for c in table.schema.features] == ["C1", "site", "visits", "price"]


def test_an_empty_number_reads_as_zero_where_the_first_rows_had_one(tmp_path):
    table = open_table(str(click_log(tmp_path / "log.csv")), label="click")
    (chunk,) = list(table.chunks())
    visits = chunk["visits"].to_numpy()
    assert visits[0] == 0 and visits[7] == 0 and np.isfinite(visits).all()


def test_a_stray_word_in_numbers_is_named_with_its_line(tmp_path):
    table = open_table(str(click_log(tmp_path / "log.csv", stray_at=5)), label="click")
    assert roles(table)["price"] == ("categorical", "string")
    assert table.notes[1] == (
        f"column 'price' holds numbers but 'N/A' at {tmp_path / 'log.csv'}:7 (1 of 400 values "
        "are not numbers): read as categorical text; fix those values to use it as a number, "
        "or give --categorical price"
    )
    quiet = open_table(str(tmp_path / "log.csv"), label="click", categorical="price,id,C1")
    assert quiet.notes == [] and roles(quiet)["id"] == ("categorical", "int64")


def test_the_user_steers_every_role(tmp_path):
    path = str(click_log(tmp_path / "log.csv"))
    table = open_table(path, label="click", numerical="C1", categorical="visits", ignore="site")
    assert roles(table)["C1"] == ("numerical", "float32")
    assert roles(table)["visits"] == ("categorical", "string")  # empty cells: text
    assert roles(table)["site"] == ("ignore", "string")


@pytest.mark.parametrize(
    "given, message",
    [
        ({"ignore": "nope"}, "--ignore names 'nope', which is not a column"),
        ({"ignore": "click"}, "'click' is the label; --ignore cannot name it"),
        ({"ignore": "C1", "categorical": "C1"}, "'C1' is named by both --categorical and"),
        ({"ignore": "C1,site,visits,price"}, "no feature columns besides the label 'click'"),
    ],
)
def test_bad_roles_are_one_error(tmp_path, runner, given, message):
    from dcn_cli.commands import app

    path = str(click_log(tmp_path / "log.csv"))
    args = [f"--{k}" if i % 2 == 0 else v for k, v in given.items() for i in (0, 1)]
    for command in (["describe", path], ["train", "--data", path, "--out", str(tmp_path / "o")]):
        result = runner.invoke(app, [*command, "--label", "click", *args])
        if command[0] == "train" or "no feature" not in message:  # describe shows it all
            assert result.exit_code == 1
            assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
            assert message in result.stderr


def test_ignore_works_on_every_source(tmp_path):
    from dcn_cli.data.generate import generate
    from tests.helpers import clicks

    clicks(tmp_path / "c", rows=60)
    table = open_table(str(tmp_path / "c"), ignore="price")
    assert roles(table)["price"] == ("ignore", "string")
    assert "price" not in [c.name for c in table.schema.features]
    generate("mixer", tmp_path / "m", rows=100)
    with pytest.raises(Exception, match="--ignore names 'nope', which is not a column"):
        open_table(str(tmp_path / "m"), ignore="nope")


def test_a_schema_json_may_ignore_a_column(tmp_path):
    from tests.helpers import clicks, set_role

    clicks(tmp_path / "c", rows=60)
    set_role(tmp_path / "c", "user", "ignore")
    prepared = prepare(open_table(str(tmp_path / "c")), DataOptions(cache=False))
    assert "user" not in [f.name for f in prepared.features]


@pytest.mark.parametrize(
    "values, codes",
    [
        ([1005, 1002, 1010, 1005], True),  # spread out
        ([320, 300, 216, 320, 728], True),
        ([-1, 100084, 100111], True),
        ([0, 1, 2, 3, 1, 0, 2], False),  # a count from 0
        ([1, 2, 3, 4], False),  # a score from 1
        (list(range(500)), False),  # too many values for codes
        ([7, 7, 7], False),  # one value
    ],
)
def test_codes_are_told_from_counts(values, codes):
    assert looks_like_codes(values) is codes


def test_a_big_integer_id_is_an_id_not_a_number():
    """Avazu's ids run past 2^63: still integers, still an id."""
    values = [str(10**19 + i) for i in range(150)]
    column, profile = infer("id", values, list(range(2, 152)), "f.csv")
    assert (column.role, profile.kind) == ("ignore", "integer")


def test_hashes_that_read_as_floats_stay_text():
    """Criteo's C3 holds hashes such as 241546e0, which float() reads as a number."""
    values = ["241546e0", "a2f4c9d1", "77c2a3e8", "0e3f9b2a"] * 30
    column, profile = infer("C3", values, list(range(2, 122)), "f.csv")
    assert (column.role, profile.kind, profile.warning) == ("categorical", "text", None)


def test_min_count_sends_rare_values_to_the_oov_row(tmp_path):
    table = open_table(str(click_log(tmp_path / "log.csv")), label="click", categorical="visits")
    every = prepare(table, DataOptions(cache=False, min_count=1))
    common = prepare(table, DataOptions(cache=False, min_count=15))
    sizes = every.vocabulary_sizes(), common.vocabulary_sizes()
    assert sizes[1]["site"] < sizes[0]["site"]
    assert sizes[1]["C1"] == sizes[0]["C1"] == 4  # three codes, each common, and the OOV row
    visits = {f.name: f for f in common.features}["visits"]
    counts = dict(
        zip(*np.unique(common.arrays("train")["visits"], return_counts=True), strict=True)
    )
    assert all(counts[v] >= 15 for v in visits.vocabulary)
    assert DataOptions(min_count=3).keyed() != DataOptions().keyed()  # its own cache entry


def test_min_count_above_every_count_keeps_the_commonest_value(tmp_path):
    table = open_table(str(click_log(tmp_path / "log.csv")), label="click")
    prepared = prepare(table, DataOptions(cache=False, min_count=10**6))
    assert {f.name: f.input_size() for f in prepared.features if f.vocabulary} == {
        "C1": 2,
        "site": 2,
    }


def test_describe_shows_roles_and_writes_a_schema_to_train_from(tmp_path, runner):
    from dcn_cli.commands import app

    path = click_log(tmp_path / "log.csv", stray_at=3)
    result = runner.invoke(app, ["describe", str(path), "--label", "click"], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "ignore (!)" in result.stdout and "integer → int64" in result.stdout
    assert result.stderr.count("Warning: ") == 3  # the id, the stray N/A, the codes

    result = runner.invoke(app, ["describe", str(path), "--label", "click", "--json"])
    described = json.loads(result.stdout)
    by_name = {c["name"]: c for c in described["columns"]}
    assert by_name["visits"]["missing"] == pytest.approx(58 / 400)
    assert by_name["C1"]["distinct"] == 3 and by_name["C1"]["top"][0]["count"] > 100
    assert by_name["price"]["warning"].startswith("column 'price' holds numbers but 'N/A'")

    out = tmp_path / "edited"
    args = ["describe", str(path), "--label", "click", "--categorical", "price"]
    assert runner.invoke(app, [*args, "--schema-out", str(out)]).exit_code == 0
    again = runner.invoke(app, [*args, "--schema-out", str(out)])
    assert again.exit_code == 1 and "exists; give --force to replace it" in again.stderr
    table = open_table(str(out))
    assert roles(table) == roles(open_table(str(path), label="click", categorical="price"))
    assert sum(c.num_rows for c in table.chunks()) == ROWS


def test_describe_profiles_sources_that_have_their_roles(tmp_path, runner):
    from dcn_cli.commands import app
    from tests.helpers import clicks

    clicks(tmp_path / "c", rows=60)
    result = runner.invoke(app, ["describe", str(tmp_path / "c"), "--json"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["label"] == "clicked" and described["rows_sampled"] == 60
    assert {c["name"]: c["role"] for c in described["columns"]}["hour"] == "categorical"
