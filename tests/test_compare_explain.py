"""dcn compare and dcn explain through the CLI, and the statistics behind them."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import clicks, dataset

from dcn_cli.commands import app
from dcn_cli.data.generate import generate
from dcn_cli.errors import DcnError
from dcn_cli.inspect.explain import block_norms, ranks, top_crosses
from dcn_cli.inspect.runs import agreement
from dcn_cli.model.presets import PRESETS, resolve_model
from dcn_cli.train.compare import welch_p_value

FAST = ["--epochs", "1", "--batch-size", "512", "--patience", "0"]


@pytest.fixture(scope="module")
def mixer(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mixer"
    generate("mixer", path, rows=2000)
    return path


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args])


def _t_tail(t: float, df: float) -> float:
    """Two-sided Student-t tail by direct numerical integration of the density."""
    x = np.linspace(abs(t), abs(t) + 200.0, 2_000_001)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    density = c * (1 + x * x / df) ** (-(df + 1) / 2)
    return float(2 * np.trapezoid(density, x))


def test_welch_p_value_matches_the_t_distribution():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 3.5, 4.0, 5.0, 6.5]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 5
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    assert welch_p_value(a, b) == pytest.approx(_t_tail(t, df), rel=1e-4)
    assert welch_p_value(a, a) == pytest.approx(1.0)
    assert welch_p_value([1.0], b) is None
    assert welch_p_value([0.5, 0.5], [0.5, 0.5]) == 1.0


def test_presets_and_config_files(tmp_path):
    assert set(PRESETS) == {"dcn", "dcn-lr", "dnn", "cross", "dcn-parallel", "dcn-v1", "dcn-mix"}
    assert resolve_model("dcn-lr")[1]["projection_dim"] == 20
    assert resolve_model("dnn")[1] == {"arch": "deep", "deep_layers": [192, 192, 192]}
    path = tmp_path / "wide.json"
    path.write_text(json.dumps({"arch": "parallel", "deep_layers": [64]}))
    assert resolve_model(str(path)) == ("wide", {"arch": "parallel", "deep_layers": [64]})
    with pytest.raises(DcnError, match="unknown model 'dcnn'"):
        resolve_model("dcnn")
    path.write_text(json.dumps({"arch": "deep", "layers": 3}))
    with pytest.raises(DcnError, match="unknown model setting.*layers"):
        resolve_model(str(path))


def test_compare_trains_each_model_per_seed_and_writes_outputs(runner, mixer, tmp_path):
    out = tmp_path / "cmp"
    result = invoke(
        runner,
        "compare",
        "cross",
        "dnn",
        "--runs",
        "2",
        "--data",
        mixer,
        "--out",
        out,
        "--json",
        "--optimizer",
        "adagrad",
        "--lr",
        "0.4",
        "--explain",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == "Warning: dnn: has no cross network, so no crosses to explain\n"
    report = json.loads(result.stdout)
    assert report["metric"] == "rmse"
    cross, dnn = report["models"]
    assert (cross["name"], dnn["name"]) == ("cross", "dnn")
    assert len(cross["runs"]) == 2 and cross["runs"][0] != cross["runs"][1]  # seeds differ
    assert cross["mean"] == pytest.approx(np.mean(cross["runs"]))
    assert cross["std"] == pytest.approx(np.std(cross["runs"]))
    assert cross["params"] == 16 and dnn["params"] == 3 * 192 + 192 + 2 * (192 * 192 + 192) + 193
    assert cross["p_value"] is None and 0.0 <= dnn["p_value"] <= 1.0
    assert cross["seconds_per_run"] > 0
    assert json.loads((out / "comparison.json").read_text()) == report
    lines = (out / "comparison.csv").read_text().splitlines()
    assert lines[0].startswith("model,rmse_mean,rmse_std,params") and len(lines) == 3
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --explain: the cross model's runs, as dcn explain says them of checkpoints.
    (explained,) = report["explain"]  # the dnn has no cross network
    (layer,) = explained["layers"]
    assert explained["model"] == "cross" and layer["ranked_by"] == "effect"
    assert layer["runs"] == ["cross seed 0", "cross seed 1"] and layer["pairs"] == 6
    assert explained["split"] == "test" and explained["rows"] > 0
    assert Path(explained["figure"]) == out / "explain-cross.png"
    assert (out / "explain-cross.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = tmp_path / "seed1"
    _train(
        runner,
        mixer,
        ckpt,
        "--arch",
        "cross",
        "--seed",
        "1",
        "--optimizer",
        "adagrad",
        "--lr",
        "0.4",
    )
    alone = json.loads(invoke(runner, "explain", ckpt, "--json", "--top", "6").stdout)["top"]
    alone = {tuple(c["features"]): c["effect"] for c in alone}
    for row in layer["top"]:
        assert row["values"][1] == pytest.approx(alone[tuple(row["features"])], rel=1e-4)


def test_compare_table(runner, mixer, tmp_path):
    out = tmp_path / "c"
    (out / "explain-old.png").parent.mkdir()
    (out / "explain-old.png").write_bytes(b"an earlier comparison's")
    argv = ["compare", "cross", "cross", "--runs", "2", "--data", mixer, "--out", out, *FAST]
    result = invoke(runner, *argv, "--explain", "--force")
    assert result.exit_code == 0, result.output
    assert "rmse mean ± std" in result.stdout and "cross" in result.stdout
    # A model named twice is two models: each its own runs, table and figure.
    assert result.stdout.count("cross: crosses of its 2 runs, cross layer 0") == 2
    figures = sorted(p.name for p in out.glob("explain-*.png"))
    assert figures == ["explain-cross-1.png", "explain-cross-2.png"]
    report = json.loads((out / "comparison.json").read_text())
    assert [e["model"] for e in report["explain"]] == ["cross", "cross"]
    assert [e["layers"][0]["runs"] for e in report["explain"]] == [
        ["cross seed 0", "cross seed 1"]
    ] * 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "dcn", "--runs", "0"], "--runs must be a positive integer, got 0"),
        (["compare", "dcnn", "--runs", "1"], "unknown model 'dcnn'"),
        (["compare", "dcn", "--runs", "1", "--data", "nowhere"], "nowhere: no such file"),
        (["compare", "dcn", "--runs", "1", "--optimizer", "rmsprop"], "--optimizer must be one of"),
        (["compare", "dcn", "--runs", "1", "--explain"], "--explain compares a model's runs"),
    ],
)
def test_compare_bad_input(runner, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output


def test_block_norms_handle_unequal_widths():
    matrix = np.arange(25, dtype=float).reshape(5, 5)
    feature_map = [{"name": "a", "offset": 0, "width": 2}, {"name": "b", "offset": 2, "width": 3}]
    blocks = block_norms(matrix, feature_map)
    assert blocks.shape == (2, 2)
    assert blocks[0, 1] == pytest.approx(np.linalg.norm(matrix[0:2, 2:5]) / np.sqrt(6))
    assert blocks[1, 0] == pytest.approx(np.linalg.norm(matrix[2:5, 0:2]) / np.sqrt(6))
    assert blocks[0, 0] == pytest.approx(np.sqrt(np.mean(matrix[0:2, 0:2] ** 2)))
    top = top_crosses(blocks, ["a", "b"], 2)
    assert top[0]["features"] == ["b", "b"]
    assert top[1]["strength"] == pytest.approx(np.hypot(blocks[0, 1], blocks[1, 0]))


def _train(runner, data, out, *extra):
    result = invoke(runner, "train", "--data", data, "--out", out, *FAST, *extra)
    assert result.exit_code == 0, result.output


def test_explain_full_rank_raw_features(runner, mixer, tmp_path):
    ckpt = tmp_path / "ck"
    _train(runner, mixer, ckpt, "--arch", "cross")
    result = invoke(runner, "explain", ckpt, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layer"] == 0 and report["features"] == ["country", "bananas", "cookbooks"]
    from dcn_cli.model.checkpoint import load_model

    layer = load_model(ckpt).get_layer("cross_network").cross_layers[0]
    np.testing.assert_allclose(report["matrix"], np.abs(layer.effective_kernel()), rtol=1e-6)
    assert (ckpt / "explain.png").read_bytes()[:4] == b"\x89PNG"
    table = invoke(runner, "explain", ckpt, "--top", "2")
    assert table.exit_code == 0 and "strongest crosses" in table.stdout
    assert table.stdout.count(" × ") == 2


def test_explain_low_rank_block_norm_on_embeddings(runner, tmp_path):
    data = clicks(tmp_path / "clicks", rows=600)
    ckpt = tmp_path / "ck"
    _train(
        runner,
        data,
        ckpt,
        "--embedding-dim",
        "4",
        "--projection-dim",
        "3",
        "--cross-layers",
        "2",
        "--deep-layers",
        "8",
    )
    out = tmp_path / "fig.png"
    result = invoke(runner, "explain", ckpt, "--block-norm", "--layer", "1", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layer"] == 1 and len(report["features"]) == 5
    assert np.array(report["matrix"]).shape == (5, 5)
    from dcn_cli.inspect.explain import block_norms as norms
    from dcn_cli.model.checkpoint import load_model, load_record

    layer = load_model(ckpt).get_layer("cross_network").cross_layers[1]
    expected = norms(np.abs(layer.effective_kernel()), load_record(ckpt)["feature_map"])
    np.testing.assert_allclose(report["matrix"], expected, rtol=1e-5)
    assert out.exists()
    both = json.loads(invoke(runner, "explain", ckpt, "--json", "--out", out, "--force").stdout)
    assert [entry["layer"] for entry in both] == [0, 1]


@pytest.mark.parametrize("cross_type", ["vector", "mix"])
def test_explain_vector_and_mix_layers(runner, mixer, tmp_path, cross_type):
    ckpt = tmp_path / "ck"
    _train(
        runner,
        mixer,
        ckpt,
        "--cross-type",
        cross_type,
        "--projection-dim",
        "2",
        "--num-experts",
        "3",
        "--deep-layers",
        "8",
    )
    result = invoke(runner, "explain", ckpt, "--json")
    assert result.exit_code == 0, result.output
    matrix = np.array(json.loads(result.stdout)["matrix"])
    from dcn_cli import backend
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.model.checkpoint import load_model, load_record

    keras = backend.load()
    model = load_model(ckpt)
    layer = model.get_layer("cross_network").cross_layers[0]
    weights = {w.name: keras.ops.convert_to_numpy(w).astype("float64") for w in layer.weights}
    if cross_type == "vector":
        # DCN-V1: x0 (w^T x): input i feeds every output by w_i, so row i is |w_i|.
        expected = np.abs(np.tile(weights["kernel"], (1, 3)))
    else:
        # The experts' linear parts V C U, weighted by the mean softmax gate over the
        # checkpoint's test rows (the first 4096), computed here in NumPy.
        rows = DataSpec.from_record(load_record(ckpt)).prepare().arrays("test")
        features = {k: rows[k][:4096] for k in ("country", "bananas", "cookbooks")}
        x0 = keras.Model(model.inputs, model.get_layer("cross_input").output)(features)
        logits = keras.ops.convert_to_numpy(x0).astype("float64") @ weights["gate_kernel"]
        gate = np.exp(logits - logits.max(axis=1, keepdims=True))
        gate = (gate / gate.sum(axis=1, keepdims=True)).mean(axis=0)
        experts = weights["v_kernel"] @ weights["c_kernel"] @ weights["u_kernel"]
        expected = np.abs(np.tensordot(gate, experts, axes=1))
    np.testing.assert_allclose(matrix, expected, rtol=1e-4, atol=1e-7)
    if cross_type == "vector":  # flow and ablation take DCN-V1's w 1^T as its K
        result = invoke(runner, "explain", ckpt, "--ablate", "1", "--json", "--force")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["layers"][0]["ranked_by"] == "effect"
        assert all(np.isfinite(row["loss_change"]) for row in report["ablation"]["pairs"])


def test_explain_bad_input(runner, mixer, tmp_path):
    result = invoke(runner, "explain", tmp_path / "none")
    assert result.exit_code == 1 and "no such checkpoint directory" in result.stderr
    ckpt = tmp_path / "deep"
    _train(runner, mixer, ckpt, "--arch", "deep", "--deep-layers", "8")
    result = invoke(runner, "explain", ckpt)
    assert result.exit_code == 1
    assert "has no cross layer (arch 'deep')" in result.stderr
    ckpt = tmp_path / "cross"
    _train(runner, mixer, ckpt, "--arch", "cross")
    result = invoke(runner, "explain", ckpt, "--layer", "3")
    assert result.exit_code == 1 and "--layer 3 is out of range" in result.stderr


def test_ranks_and_agreement_of_runs():
    assert ranks(np.array([0.2, 0.9, 0.2, 0.5])).tolist() == [3.5, 1.0, 3.5, 2.0]
    strengths = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [1.0, 3.0, 2.0]])
    agree = agreement(strengths, k=1)
    assert agree["ranks"].tolist() == [[1, 2, 3], [1, 3, 2], [3, 1, 2]]
    assert agree["overlap"] == {"mean": pytest.approx(1 / 3), "min": 0.0}
    # Spearman of each couple of runs: 0.5, -1 and -0.5.
    assert agree["spearman"] == {"mean": pytest.approx(-1 / 3), "min": pytest.approx(-1.0)}
    assert agree["in_every_top"] == set()
    assert agreement(strengths[:2], k=1)["in_every_top"] == {0}
    assert agreement(np.ones((2, 3)), k=1)["spearman"] is None  # no order: no correlation


def test_explain_of_several_runs(runner, mixer, tmp_path):
    ckpts = [tmp_path / f"seed{s}" for s in range(2)]
    for seed, ckpt in enumerate(ckpts):
        _train(runner, mixer, ckpt, "--seed", str(seed), "--cross-layers", "2")
    out = tmp_path / "runs.png"
    result = invoke(runner, "explain", *ckpts, "--top", "2", "--layer", "1", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    (by_effect,) = json.loads(result.stdout)["layers"]
    assert by_effect["layer"] == 1 and by_effect["k"] == 2 and by_effect["pairs"] == 6
    assert by_effect["ranked_by"] == "effect"  # the default, where the data is at hand
    by_strength = invoke(
        runner,
        "explain",
        *ckpts,
        "--top",
        "2",
        "--layer",
        "1",
        "--out",
        out,
        "--force",
        "--rank-by",
        "strength",
        "--json",
    )
    # Each run's values are what explain says of that checkpoint alone (it lists all three).
    singles = [
        json.loads(invoke(runner, "explain", c, "--layer", "1", "--top", "6", "--json").stdout)
        for c in ckpts
    ]
    for entry, measure in (
        (by_effect, "effect"),
        (json.loads(by_strength.stdout)["layers"][0], "strength"),
    ):
        assert entry["ranked_by"] == measure
        alone = [{tuple(c["features"]): c[measure] for c in single["top"]} for single in singles]
        for row in entry["top"]:
            mine = [run[tuple(row["features"])] for run in alone]
            np.testing.assert_allclose(row["values"], mine, rtol=1e-6)
            assert row["mean"] == pytest.approx(np.mean(mine))
            assert row["std"] == pytest.approx(np.std(mine, ddof=1))
            ranked = [
                sorted(run.values(), reverse=True).index(run[tuple(row["features"])]) + 1
                for run in alone
            ]
            assert row["ranks"] == ranked
            assert row["in_every_top"] == all(r <= 2 for r in ranked)
        assert [r["mean"] for r in entry["top"]] == sorted(
            (r["mean"] for r in entry["top"]), reverse=True
        )
    assert out.read_bytes()[:4] == b"\x89PNG"
    table = invoke(runner, "explain", *ckpts, "--top", "2", "--out", out, "--force")
    assert table.exit_code == 0, table.output
    assert "crosses of 2 runs, cross layer 0" in table.stdout
    assert "pairs are in the top 2 of every run" in table.stdout


def test_explain_of_several_runs_bad_input(runner, mixer, on_clicks, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _train(runner, mixer, a, "--arch", "cross")
    _train(runner, mixer, b, "--arch", "cross", "--cross-layers", "2")
    result = invoke(runner, "explain", a, b, "--out", tmp_path / "x.png")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {b}: has 2 cross layer(s) where {a} has 1; explain compares runs of one model\n"
    )
    _, c, _ = on_clicks
    result = invoke(runner, "explain", a, c, "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and f"Error: {c}: its features differ from {a}'s" in result.stderr
    result = invoke(runner, "explain", a, a, "--block-norm", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "--block-norm draws one checkpoint's" in result.stderr
    (tmp_path / "mine.png").write_bytes(b"mine")
    result = invoke(runner, "explain", a, a, "--out", tmp_path / "mine.png")
    assert result.exit_code == 1 and "exists; replace it with --force" in result.stderr
    assert (tmp_path / "mine.png").read_bytes() == b"mine"
    assert not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def on_clicks(tmp_path_factory):
    """The small click data, and two checkpoints of it: one cross layer under the output
    (no validation split), and dcn's stacked model."""
    from typer.testing import CliRunner

    home = tmp_path_factory.mktemp("clicks")
    data = clicks(home / "clicks", rows=600)
    small = ["--embedding-dim", "2", "--validation", "0"]
    for name, flags in (("cross", ["--arch", "cross"]), ("stacked", ["--deep-layers", "8"])):
        _train(CliRunner(), data, home / name, *flags, *small)
    return data, home / "cross", home / "stacked"


def test_ablation_is_the_loss_with_the_blocks_zeroed(runner, on_clicks, monkeypatch):
    _, ckpt, _ = on_clicks
    result = invoke(runner, "explain", ckpt, "--ablate", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["ablation"]
    from dcn_cli.inspect import evaluate
    from dcn_cli.model import checkpoint

    plain = evaluate.evaluate(ckpt)
    assert report["split"] == "test" and report["rows"] == plain["rows"]
    assert report["loss"] == pytest.approx(plain["logloss"], rel=1e-5)
    controls = [row for row in report["pairs"] if row["control"]]
    # The 3 weakest by strength of the pairs no ranking puts in its top 2 (of 15 pairs).
    assert len(controls) == 3 and all(row["strength_rank"] >= 7 for row in controls)
    strongest = [row for row in report["pairs"] if not row["control"]]
    assert {1, 2} <= {row["strength_rank"] for row in strongest}
    assert {1, 2} <= {row["flow_rank"] for row in strongest}
    assert {1, 2} <= {row["effect_rank"] for row in strongest}
    # The first pair's two blocks of K set to 0 in the weights themselves: the same loss.
    model = checkpoint.load_model(ckpt)
    layer = model.get_layer("cross_network").cross_layers[0]
    where = {e["name"]: e for e in checkpoint.load_record(ckpt)["feature_map"]}
    a, b = (where[name] for name in report["pairs"][0]["features"])
    kernel = layer.kernel.numpy()
    for i, j in ((a, b), (b, a)):
        kernel[i["offset"] : i["offset"] + i["width"], j["offset"] : j["offset"] + j["width"]] = 0
    layer.kernel.assign(kernel)
    monkeypatch.setattr(checkpoint, "load_model", lambda *args: model)
    zeroed = evaluate.evaluate(ckpt)["logloss"]
    assert zeroed - plain["logloss"] == pytest.approx(report["pairs"][0]["loss_change"], abs=1e-6)
    assert all(row["flow"] >= 0 for row in report["pairs"])
    table = invoke(runner, "explain", ckpt, "--ablate", "1")
    assert "(control)" in table.stdout and "rank correlation of strength" in table.stdout
    assert "rank correlation of flow" in table.stdout
    assert "rank correlation of effect" in table.stdout


def test_flow_is_what_each_block_adds_to_each_layers_output():
    from dcn_cli.inspect.ablation import model_strengths
    from dcn_cli.inspect.explain import pair_strengths
    from dcn_cli.inspect.use import flow_blocks, layer_kernel
    from dcn_cli.model.layers import Cross, VectorCross

    rng = np.random.default_rng(0)
    feature_map = [
        {"name": "a", "offset": 0, "width": 1},
        {"name": "b", "offset": 1, "width": 3},
        {"name": "c", "offset": 4, "width": 2},
    ]
    x0 = rng.normal(size=(50, 6)).astype(np.float32)
    layers = [Cross(), VectorCross(), Cross(projection_dim=2)]
    x = x0
    for layer in layers:
        x = layer(x0, x)
    kernels = [layer_kernel(layer) for layer in layers]
    # DCN-V1's K is w 1^T: its output is x0 * (x @ K) + b + x.
    got = np.asarray(layers[1](x0, x0))
    np.testing.assert_allclose(got, x0 * (x0 @ kernels[1]) + x0, rtol=1e-5, atol=1e-6)
    flows = flow_blocks(x0, layers, feature_map)
    x = x0.astype(np.float64)
    for layer, K, got in zip(layers, kernels, flows, strict=True):
        for i, fi in enumerate(feature_map):
            for j, fj in enumerate(feature_map):
                I = slice(fi["offset"], fi["offset"] + fi["width"])  # noqa: E741
                J = slice(fj["offset"], fj["offset"] + fj["width"])
                norms = [np.linalg.norm(x0[r, J] * (x[r, I] @ K[I, J])) for r in range(50)]
                assert got[i, j] == pytest.approx(np.mean(norms), rel=1e-5)
        x = np.asarray(layer(x0, x.astype(np.float32)), np.float64)
    both = model_strengths(flows)
    expected = np.sqrt(sum(pair_strengths(f) ** 2 for f in flows))
    assert both == pytest.approx(expected)


def test_explain_ranks_by_effect_on_held_out_rows(runner, on_clicks, tmp_path):
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.inspect.use import flow_blocks
    from dcn_cli.model import checkpoint
    from dcn_cli.model.factory import cross_input_model, cross_input_to_logit

    _, _, ckpt = on_clicks
    out = tmp_path / "x.png"
    result = invoke(runner, "explain", ckpt, "--top", "100", "--json", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ranked_by"] == "effect" and report["split"] == "test"  # no validation
    # The first 4096 test rows' x0, computed here from the model.
    record = checkpoint.load_record(ckpt)
    config = checkpoint.model_config(record, ckpt)
    model = checkpoint.load_model(ckpt, config)
    rows = DataSpec.from_record(record, ckpt).prepare().arrays("test")
    x0 = cross_input_model(model)({f.name: rows[f.name][:4096] for f in config.features})
    x0, fmap = np.asarray(x0), config.feature_map()
    assert report["rows"] == len(x0)
    (layer,) = model.get_layer("cross_network").cross_layers
    (expected,) = flow_blocks(x0, [layer], fmap)
    np.testing.assert_allclose(report["flow"], expected, rtol=1e-5)
    # Effect: per row, the derivative of the logit by the scale of one block of K
    # (central differences), its absolute value averaged over the rows.
    to_logit, dim = cross_input_to_logit(model), x0.shape[1]
    strongest = np.unravel_index(np.argmax(report["effect"]), (5, 5))
    for i, j in (strongest, (2, 2)):
        logits = {}
        for scale in (1.1, 0.9):
            mask = np.ones((dim, dim))
            a, b = fmap[i], fmap[j]
            mask[a["offset"] : a["offset"] + a["width"], b["offset"] : b["offset"] + b["width"]] = (
                scale
            )
            layer.ablation = mask
            logits[scale] = np.asarray(to_logit(x0, training=False), np.float64)[:, 0]
        layer.ablation = None
        derivative = (logits[1.1] - logits[0.9]) / 0.2
        assert report["effect"][i][j] == pytest.approx(np.abs(derivative).mean(), rel=2e-3)
    effects = [c["effect"] for c in report["top"]]
    assert effects == sorted(effects, reverse=True) and len(effects) == 15
    strength = json.loads(
        invoke(
            runner, "explain", ckpt, "--json", "--rank-by", "strength", "--out", out, "--force"
        ).stdout
    )
    assert strength["ranked_by"] == "strength" and "effect" not in strength
    values = [c["strength"] for c in strength["top"]]
    assert values == sorted(values, reverse=True)
    by_flow = invoke(
        runner, "explain", ckpt, "--json", "--rank-by", "flow", "--out", out, "--force"
    )
    flows = [c["flow"] for c in json.loads(by_flow.stdout)["top"]]
    assert flows == sorted(flows, reverse=True)
    table = invoke(runner, "explain", ckpt, "--top", "2", "--out", out, "--force")
    title = f"strongest crosses by effect on {len(x0)} test rows, cross layer 0"
    assert title in table.stdout
    assert "effect of a pair of features a, b" in table.stdout


def test_one_rows_parts_add_up_to_its_score(runner, on_clicks):
    data, exact, deep = on_clicks
    rows = data / "data-00000.csv"
    scores = invoke(runner, "predict", exact, "--data", rows).stdout.splitlines()
    result = invoke(runner, "explain", exact, "--data", rows, "--row", "3", "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["method"] == "exact" and got["row"] == 3
    assert got["prediction"] == pytest.approx(float(scores[3].split(",")[-1]), abs=1e-5)
    parts = [f["contribution"] for f in got["features"]]
    assert got["check"]["base"] + sum(parts) == pytest.approx(got["logit"], abs=1e-5)
    assert got["check"]["gap"] < 1e-5 and len(got["pairs"]) == 15
    result = invoke(runner, "explain", deep, "--data", rows, "--row", "3", "--json")
    got = json.loads(result.stdout)
    assert got["method"] == "integrated gradients" and "contribution" not in got["pairs"][0]
    parts = [f["contribution"] for f in got["features"]]
    assert got["check"]["base"] + sum(parts) == pytest.approx(got["check"]["sum_of_parts"])
    assert got["check"]["gap"] < 0.02  # 64 steps of the midpoint rule
    table = invoke(runner, "explain", exact, "--data", rows, "--top", "2")
    assert "part of the logit" in table.stdout and "add up to" in table.stdout
    result = invoke(runner, "explain", exact, "--data", rows, "--row", "601")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {rows}: holds 600 row(s); --row 601 is past its end\n"
    result = invoke(runner, "explain", exact, deep, "--data", rows)
    assert result.exit_code == 1 and "--data explains one row of one checkpoint" in result.stderr


def test_ablation_bad_input(runner, mixer, tmp_path):
    ckpt = tmp_path / "mix"
    _train(runner, mixer, ckpt, "--arch", "cross", "--cross-type", "mix")
    result = invoke(runner, "explain", ckpt, "--ablate", "2")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "effect and flow are not defined for DCN-Mix layers" in result.stderr
    assert not (ckpt / "explain.png").exists()  # nothing drawn before the error
    result = invoke(runner, "explain", ckpt, ckpt, "--ablate", "2")
    assert result.exit_code == 1 and "--ablate measures one checkpoint" in result.stderr
    result = invoke(runner, "explain", ckpt, "--ablate", "0")
    assert result.exit_code == 1 and "--ablate must be positive, got 0" in result.stderr


def test_reused_model_runs_match_freshly_built_ones(mixer):
    """compare reuses the first run's traced model; later seeds must not notice."""
    from dcn_cli import backend
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.model.config import ModelConfig
    from dcn_cli.model.factory import build_model
    from dcn_cli.train.compare import compare
    from dcn_cli.train.engine import compile_model
    from dcn_cli.train.metrics import evaluate_batches
    from dcn_cli.train.run import TrainSettings, make_optimizer

    keras = backend.load()
    spec, settings = DataSpec(str(mixer)), TrainSettings(epochs=2, batch_size=256, patience=0)
    runs = compare(["dcn"], 2, spec, settings, dropout=0.0)["models"][0]["runs"]

    prepared = spec.prepare()
    keras.utils.set_random_seed(1)
    config = ModelConfig(
        features=prepared.features, task="regression", dropout=0.0, **PRESETS["dcn"]
    )
    model = build_model(config)
    compile_model(model, "regression", make_optimizer(settings))
    model.fit(dataset(prepared, "train", 256, shuffle_seed=1), epochs=2, verbose=0, shuffle=False)
    test = dataset(prepared, "test", 8192)
    fresh = evaluate_batches(lambda x: model(x, training=False), "regression", test)["rmse"]
    assert runs[1] == pytest.approx(fresh, rel=1e-5)
