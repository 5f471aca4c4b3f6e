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
  assert tables.paired_metrics() == ("cvr_auc", "ctcvr_auc", "ctr_auc",
                                     "cvr_gauc", "ctcvr_gauc")
  assert tables.headline_metrics()[:5] == ("ctr_auc", "cvr_auc", "ctcvr_auc",
                                           "ctr_gauc", "ctcvr_gauc")
  assert tables.table_metrics()[:6] == ("ctr_auc", "cvr_auc", "ctcvr_auc",
                                        "ctr_gauc", "cvr_gauc", "ctcvr_gauc")
  tasks = ("income_50k", "never_married")
  assert tables.paired_metrics(tasks) == ("income_50k_auc",
                                          "never_married_auc", "mean_auc",
                                          "mean_gauc")
  assert tables.headline_metrics(tasks)[:4] == ("income_50k_auc",
                                                "never_married_auc", "mean_auc",
                                                "mean_gauc")
  full = tables.table_metrics(tasks)
  assert "never_married_ece" in full and "cvr_auc" not in full
  assert "income_50k_gauc" in full


def test_metric_titles_name_the_task_and_auc_or_gauc():
  assert [tables.metric_title(k) for k in (
      "cvr_auc", "ctcvr_gauc", "mean_auc", "mean_gauc", "income_50k_gauc",
      "tau_mean")] == ["CVR AUC", "CTCVR GAUC", "mean AUC", "mean GAUC",
                       "income_50k GAUC", "tau_mean"]


def test_calibration_table_before_after_and_seeds_within_two_se():
  def report(ratio, se, auc=0.8):
    return {f"{t}_{k}": v for t in ("ctr", "cvr", "ctcvr") for k, v in
            (("pred_obs_ratio", ratio), ("pred_obs_ratio_se", se),
             ("ece", abs(ratio - 1) / 10), ("auc", auc))}
  runs = [{"method": "mmoe", "seed": s,
           "test": {**report(1.2, 0.02), "calibrated": report(r, 0.02)}}
          for s, r in enumerate((1.01, 0.97, 1.05))]
  runs.append({"method": "esmm", "seed": 0, "test": report(1.1, 0.02)})
  table = tables.calibration_table(runs, ["mmoe", "esmm"],
                                   ("ctr", "cvr", "ctcvr"))
  header, _, row = table.splitlines()
  assert header.startswith("| method | seeds | ctr pred/obs | ctr ECE |")
  assert row.startswith("| mmoe | 3 | 1.200 ± 0.000 → 1.010 ± 0.033 |")
  assert row.endswith("| 0.0e+00 | 2 |")   # 1.05 is 2.5 s.e. off
  assert "esmm" not in table                # no calibrated report
  assert tables.within({"cvr_pred_obs_ratio": 1.03,
                        "cvr_pred_obs_ratio_se": 0.02}, "cvr")
  assert not tables.within({"cvr_pred_obs_ratio": 1.05,
                            "cvr_pred_obs_ratio_se": 0.02}, "cvr")
