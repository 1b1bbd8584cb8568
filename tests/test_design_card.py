"""The design card's examples, exactly as written, in a fresh directory."""

import json

import pytest

from dcn_cli.commands import app


@pytest.mark.slow  # about 2.5 minutes: the defaults train 20 epochs, and compare trains 10 models
def test_design_card_examples_work_as_written(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, "train --arch stacked --projection-dim 20".split())
    assert result.exit_code == 0, result.output
    # The built-in mixer has 3 inputs: a rank of 20 saves nothing, and says so.
    assert "Warning: projection_dim 20" in result.stderr
    assert json.loads((tmp_path / "ckpt" / "metrics.json").read_text())["rmse"] < 0.5

    result = runner.invoke(app, "compare dcn dnn --runs 5".split())
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert [m["name"] for m in report["models"]] == ["dcn", "dnn"]
    assert all(len(m["runs"]) == 5 for m in report["models"])

    result = runner.invoke(app, "explain ckpt/ --block-norm".split())
    assert result.exit_code == 0, result.output
    assert "bananas × cookbooks" in result.stdout or "cookbooks × bananas" in result.stdout
    assert (tmp_path / "ckpt" / "explain-block-norm.png").exists()
