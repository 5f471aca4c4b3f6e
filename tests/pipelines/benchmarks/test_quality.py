"""Tests of pipelines/benchmarks/quality.py: the results tables and pairing."""

import numpy as np
import pytest

from pipelines.benchmarks import quality
from pipelines.benchmarks import tables


def _run(method, seed, cvr, ctcvr=0.92, ctr=0.85, valid_cvr=None):
  run = {"method": method, "seed": seed,
         "test": {"cvr_auc": cvr, "ctcvr_auc": ctcvr, "ctr_auc": ctr}}
  if valid_cvr is not None:
    run["valid"] = {"cvr_auc": valid_cvr, "ctcvr_auc": ctcvr, "ctr_auc": ctr}
  return run


def test_paired_differences_on_the_validation_split():
  runs = [_run("esmm", 0, 0.72, valid_cvr=0.70),
          _run("esmm", 1, 0.73, valid_cvr=0.71),
          _run("esmm_click_gate", 0, 0.74, valid_cvr=0.75),
          _run("esmm_click_gate", 1, 0.75, valid_cvr=0.77),
          _run("adaftr_esmm", 0, 0.70)]   # saved without a validation report
  valid = quality.paired_differences(runs, "valid")
  assert set(valid) == {"esmm_click_gate"}
  assert valid["esmm_click_gate"]["cvr_auc"]["mean"] == pytest.approx(0.055)
  test = quality.paired_differences(runs)
  assert test["esmm_click_gate"]["cvr_auc"]["mean"] == pytest.approx(0.02)
  assert test["adaftr_esmm"]["seeds"] == [0]


def test_paired_differences_pair_by_seed_with_t_intervals():
  from adaftr_tf import metrics
  esmm = [0.72, 0.73, 0.71]
  oracle = [0.76, 0.765, 0.75]
  network = [0.70, 0.705, 0.69]
  runs = ([_run("esmm", s, v) for s, v in enumerate(esmm)]
          + [_run("adaftr_esmm_oracle", s, v) for s, v in enumerate(oracle)]
          + [_run("adaftr_esmm", s, v) for s, v in enumerate(network)]
          + [_run("adaftr_mmoe", 0, 0.7)])      # no mmoe run: not paired
  paired = quality.paired_differences(runs)
  assert set(paired) == {"adaftr_esmm_oracle", "adaftr_esmm"}
  diffs = np.subtract(oracle, esmm)
  mean, low, high = metrics.paired_interval(diffs)
  entry = paired["adaftr_esmm_oracle"]
  assert entry["baseline"] == "esmm" and entry["seeds"] == [0, 1, 2]
  assert entry["cvr_auc"] == pytest.approx(
      {"mean": mean, "low": low, "high": high})
  assert entry["fraction_of_oracle_cvr_gain"] == pytest.approx(1.0)
  share = np.mean(np.subtract(network, esmm)) / mean
  assert paired["adaftr_esmm"]["fraction_of_oracle_cvr_gain"] == (
      pytest.approx(share))
  table = tables.paired_table(paired)
  assert f"| adaftr_esmm_oracle | esmm | 3 | {mean:+.4f} [{low:+.4f}, " \
      f"{high:+.4f}] |" in table
  assert f"| {share:.2f} |" in table


def test_independent_tasks_get_tables_named_after_their_labels():
  report = lambda a, b: {"income_50k_auc": a, "never_married_auc": b,
                         "mean_auc": (a + b) / 2}
  runs = [{"method": m, "seed": s, "test": report(a + s / 100, b)}
          for m, a, b in (("mmoe", 0.90, 0.95), ("adaftr_mmoe", 0.91, 0.93))
          for s in (0, 1)]
  paired = quality.paired_differences(runs)
  entry = paired["adaftr_mmoe"]
  assert entry["income_50k_auc"]["mean"] == pytest.approx(0.01)
  assert entry["never_married_auc"]["mean"] == pytest.approx(-0.02)
  assert entry["mean_auc"]["mean"] == pytest.approx(-0.005)
  table = tables.paired_table(paired)
  assert ("Δ income_50k AUC [95% CI] | Δ never_married AUC [95% CI] | "
          "Δ mean AUC [95% CI]") in table
  summary = quality.aggregate(runs)
  headline = tables.markdown_table(summary, ["mmoe", "adaftr_mmoe"],
                                    tables.headline_metrics(
                                        ("income_50k", "never_married")))
  assert "| method | income_50k_auc | never_married_auc | mean_auc |" in headline
  assert "cvr_auc" not in headline


def test_a_reference_pairs_every_other_method_with_it():
  runs = ([_run("single_task", s, 0.70 + s / 100) for s in (0, 1)]
          + [_run("mmoe", s, 0.72 + s / 100) for s in (0, 1)]
          + [_run("adaftr_mmoe", s, 0.69) for s in (0, 1)])
  paired = quality.paired_differences(runs, reference="single_task")
  assert set(paired) == {"mmoe", "adaftr_mmoe"}
  assert paired["mmoe"]["baseline"] == "single_task"
  assert paired["mmoe"]["cvr_auc"]["mean"] == pytest.approx(0.02)
  assert paired["adaftr_mmoe"]["cvr_auc"]["mean"] == pytest.approx(-0.015)
  # Without a reference, the registered baselines only.
  assert set(quality.paired_differences(runs)) == {"adaftr_mmoe"}


def test_older_runs_without_gauc_are_summarised_and_paired_without_it():
  runs = [_run("esmm", 0, 0.72), _run("esmm_click_gate", 0, 0.74),
          _run("esmm", 1, 0.73), _run("esmm_click_gate", 1, 0.75)]
  for run in runs[2:]:                       # the newer runs have GAUC
    run["test"].update(cvr_gauc=0.6, ctcvr_gauc=0.7, group_field="user",
                       ctr_reliability=[{"count": 1, "mean_pred": 0.1,
                                         "observed": 0.0}])
  summary = quality.aggregate(runs)
  assert set(summary["esmm"]) == {"cvr_auc", "ctcvr_auc", "ctr_auc"}
  paired = quality.paired_differences(runs)["esmm_click_gate"]
  assert "cvr_auc" in paired and "cvr_gauc" not in paired
  newer = quality.paired_differences(runs[2:])["esmm_click_gate"]
  assert newer["cvr_gauc"]["mean"] == pytest.approx(0.0)
  assert "Δ CVR GAUC [95% CI]" in tables.paired_table(
      quality.paired_differences(runs[2:]))


def test_final_outputs_include_the_reliability_diagram(tmp_path):
  from adaftr_tf import metrics
  rng = np.random.default_rng(0)
  probs = rng.uniform(0.01, 0.3, 500)
  labels = (rng.random(500) < probs).astype(float)
  runs = []
  for method in ("esmm", "esmm_click_gate"):
    for seed in (0, 1):
      report = {}
      for task in ("ctr", "cvr", "ctcvr"):
        report.update(metrics.binary_report(labels, probs * (1 + seed / 10),
                                            task))
      runs.append({"method": method, "seed": seed, "test": report})
  quality.write_outputs(str(tmp_path), {}, runs, ["esmm", "esmm_click_gate"],
                        {}, final=True)
  for name in ("results.json", "results.md", "metrics.png", "reliability.png"):
    assert (tmp_path / name).stat().st_size > 0, name


def test_runs_pair_with_the_same_method_in_another_output_folder(tmp_path):
  import json
  base = [_run(m, s, 0.70 + s / 100) for m in ("mmoe", "adaftr") for s in (0, 1)]
  new = [_run(m, s, 0.72 + s / 100) for m in ("mmoe", "adaftr") for s in (0, 1)]
  (tmp_path / "results.json").write_text(json.dumps({"runs": base}))
  paired = quality.paired_differences(
      new, baseline_runs=quality.read_runs(str(tmp_path)))
  assert set(paired) == {"mmoe", "adaftr"}
  assert paired["mmoe"]["baseline"] == "mmoe"
  assert paired["adaftr"]["cvr_auc"]["mean"] == pytest.approx(0.02)
  with pytest.raises(ValueError, match="holds no results.json"):
    quality.read_runs(str(tmp_path / "nope"))

