"""Tests of pipelines/benchmarks/quality.py: methods and the results table."""

import pytest

from adaftr_tf import experiments
from pipelines.benchmarks import quality


def test_unknown_method_is_rejected():
  with pytest.raises(ValueError, match="unknown method.*nope.*valid"):
    quality.select_methods("mmoe,nope")
  assert quality.select_methods("") == experiments.method_names()


def test_table_marks_missing_and_undefined_cells():
  summary = {
      "mmoe": {"ctr_auc": {"mean": 0.8, "std": 0.01, "n": 3}},
      "adaftr_fixed_tau": {
          "ctr_auc": {"mean": 0.81, "std": 0.02, "n": 3},
          "spearman_neg_tau_vs_r": {"mean": float("nan"),
                                    "std": float("nan"), "n": 3}}}
  table = quality.markdown_table(
      summary, ["mmoe", "adaftr_fixed_tau"],
      ("ctr_auc", "spearman_neg_tau_vs_r", "cvr_auc"))
  assert table.splitlines() == [
      "| method | ctr_auc | spearman_neg_tau_vs_r |",
      "| --- | --- | --- |",
      "| mmoe | 0.8000 ± 0.0100 | — |",
      "| adaftr_fixed_tau | 0.8100 ± 0.0200 | undefined |"]
