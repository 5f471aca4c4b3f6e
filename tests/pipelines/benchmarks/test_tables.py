"""Tests of pipelines/benchmarks/tables.py: columns per objective, cells."""

from pipelines.benchmarks import tables


def test_table_marks_missing_and_undefined_cells():
  summary = {
      "mmoe": {"ctr_auc": {"mean": 0.8, "std": 0.01, "n": 3}},
      "adaftr_fixed_tau": {
          "ctr_auc": {"mean": 0.81, "std": 0.02, "n": 3},
          "spearman_neg_tau_vs_r": {"mean": float("nan"),
                                    "std": float("nan"), "n": 3}}}
  table = tables.markdown_table(
      summary, ["mmoe", "adaftr_fixed_tau"],
      ("ctr_auc", "spearman_neg_tau_vs_r", "cvr_auc"))
  assert table.splitlines() == [
      "| method | ctr_auc | spearman_neg_tau_vs_r |",
      "| --- | --- | --- |",
      "| mmoe | 0.8000 ± 0.0100 | — |",
      "| adaftr_fixed_tau | 0.8100 ± 0.0200 | undefined |"]


def test_columns_follow_the_reported_tasks():
  assert tables.paired_metrics() == ("cvr_auc", "ctcvr_auc", "ctr_auc")
  assert tables.headline_metrics()[:3] == ("ctr_auc", "cvr_auc", "ctcvr_auc")
  assert tables.table_metrics()[:3] == ("ctr_auc", "cvr_auc", "ctcvr_auc")
  tasks = ("income_50k", "never_married")
  assert tables.paired_metrics(tasks) == ("income_50k_auc",
                                          "never_married_auc", "mean_auc")
  assert tables.headline_metrics(tasks)[:3] == ("income_50k_auc",
                                                "never_married_auc", "mean_auc")
  full = tables.table_metrics(tasks)
  assert "never_married_ece" in full and "cvr_auc" not in full
