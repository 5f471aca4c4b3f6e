"""The quality benchmark job on a tiny config writes every file with every field."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import pytest

from pipelines import benchmark_quality

FLAGS = flags.FLAGS


def test_tiny_benchmark_writes_every_file_and_field(tmp_path, tiny_run, capsys):
  out = tmp_path / "bench"
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["bench", "--preset=tiny", "--seeds=2", "--methods=mmoe,adaftr",
           f"--output_dir={out}", f"--data_dir={tiny_run['data_dir']}",
           "--override=train.steps_per_epoch=4"])
    benchmark_quality.main(["bench"])
  printed = capsys.readouterr().out
  assert "[run 4/4] adaftr seed 1" in printed
  for name in ("results.json", "results.md", "metrics.png", "tau.png"):
    assert os.path.getsize(out / name) > 0, name
  results = json.loads((out / "results.json").read_text())
  assert len(results["runs"]) == 4
  assert {r["config"]["train"]["seed"] for r in results["runs"]} == {42, 43}
  for method in ("mmoe", "adaftr"):
    summary = results["summary"][method]
    for key in ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_logloss", "ctr_ece",
                "cvr_pred_obs_ratio", "oracle_ctr_auc", "oracle_cvr_auc"):
      assert summary[key]["n"] == 2, (method, key)
  assert "spearman_neg_tau_vs_r" in results["summary"]["adaftr"]
  assert "spearman_neg_tau_vs_r" not in results["summary"]["mmoe"]
  table = (out / "results.md").read_text()
  assert "| mmoe |" in table and "| adaftr |" in table and "oracle" in table
  assert " ± " in table


def test_unknown_method_is_rejected():
  with pytest.raises(ValueError, match="unknown method.*nope.*valid"):
    benchmark_quality.select_methods("mmoe,nope")
  assert benchmark_quality.select_methods("") == list(benchmark_quality.METHODS)
