"""Tests of the `python -m pipelines.sweep` entrypoint: a tiny sweep selects
on validation."""

import json

import pytest

from pipelines import sweep as sweep_main
from tests.helpers.flags import run_main


@pytest.mark.slow  # two training runs
def test_tiny_sweep_selects_on_validation(tmp_path, tiny_run, capsys):
  run_main(sweep_main, [
      "--preset=tiny", "--method=mmoe", "--budget=2",
      f"--output_dir={tmp_path}", f"--data_dir={tiny_run['data_dir']}",
      "--override=train.steps_per_epoch=3"], "sweep")
  result = json.loads((tmp_path / "sweep.json").read_text())
  assert len(result["trials"]) == 2
  best = max(t["score"] for t in result["trials"])
  assert result["winner"]["score"] == best
  for trial in result["trials"]:
    valid = trial["valid"]
    assert trial["score"] == pytest.approx(
        (valid["ctr_auc"] + valid["cvr_auc"] + valid["ctcvr_auc"]) / 3)
  assert result["trials"][0]["overrides"] == []
  table = (tmp_path / "sweep.md").read_text()
  assert table.count("\n| ") == 2 + 2 and "(as defined)" in table
  expected = (" ".join(f"--override={o}" for o in result["winner"]["overrides"])
              or "the method as defined (no overrides)")
  assert f"winner (validation): {expected}" in capsys.readouterr().out
