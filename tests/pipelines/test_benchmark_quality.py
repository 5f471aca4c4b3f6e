"""Tests of the `python -m pipelines.benchmark_quality` entrypoint: the quality
benchmark job on a tiny config writes every file with every field, and
resumes."""

import json
import os

from absl import app
import pytest

from pipelines import benchmark_quality
from tests.helpers.flags import run_main


def _bench(out, data_dir, seeds=2, methods="mmoe,adaftr", steps=4):
  """Runs benchmark_quality.main with these flags on the tiny preset."""
  run_main(benchmark_quality, [
      "--preset=tiny", f"--seeds={seeds}", f"--methods={methods}",
      f"--output_dir={out}", f"--data_dir={data_dir}",
      f"--override=train.steps_per_epoch={steps}"], "bench")


@pytest.mark.slow  # the whole benchmark, twice
def test_tiny_benchmark_writes_every_file_and_field(tmp_path, tiny_run, capsys):
  out = tmp_path / "bench"
  _bench(out, tiny_run["data_dir"])
  printed = capsys.readouterr().out
  assert "[run 4/4] adaftr seed 1" in printed
  for name in ("results.json", "results.md", "metrics.png", "tau.png",
               "reliability_calibrated.png",
               "reliability.png"):
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
  parts = table.split("\n\n")
  headline, full = parts[0], parts[-1]
  assert "Calibration on the test split" in table
  assert "| mmoe | 2 |" in table     # the calibration table's row
  assert "Learning curves: cvr_auc per epoch" in table
  assert set(results["learning_curves"]) == {"mmoe", "adaftr"}
  for curve in results["learning_curves"].values():
    assert curve["runs"] == 2 and len(curve["train"]) == len(curve["valid"])
    assert all(0 < v < 1 for v in curve["train"] + curve["valid"])
  assert headline.splitlines()[0] == (
      "| method | ctr_auc | cvr_auc | ctcvr_auc | ctr_gauc | ctcvr_gauc | "
      "ctcvr_logloss | cvr_pred_obs_ratio | tau_mean | spearman_neg_tau_vs_r "
      "| spearman_agreement_vs_r |")
  assert "ctr_ece" in full.splitlines()[0]
  assert "| mmoe |" in headline and "| mmoe |" in full
  assert results["complete"] is True
  for run in results["runs"]:
    assert (out / "runs" / f"{run['method']}-seed{run['seed']}" /
            "run.json").exists()
    assert 0 < run["valid"]["cvr_auc"] < 1 and "best_epoch" in run["valid"]
    assert {"calibrated", "calibrated_platt", "calibrated_isotonic"} <= set(
        run["test"])   # the configured method and every method, measured
    assert run["test"]["calibrated"] == run["test"]["calibrated_platt"]

  # Resume: runs with a saved run.json of the same config are not redone; a
  # missing one is; a changed config is refused before any run (a finished
  # run is never overwritten).
  os.remove(out / "runs" / "mmoe-seed1" / "run.json")
  os.remove(out / "tau.png")
  _bench(out, tiny_run["data_dir"])
  printed = capsys.readouterr().out
  assert printed.count("done before") == 3
  assert "[run 2/4] mmoe seed 1 (" in printed
  resumed = json.loads((out / "results.json").read_text())
  assert os.path.getsize(out / "tau.png") > 0
  for before, after in zip(results["runs"], resumed["runs"]):
    if (before["method"], before["seed"]) != ("mmoe", 1):
      assert before == after
  # A run saved before a field existed takes the field's default; one saved
  # without its validation report gets the one its model dir holds.
  saved = out / "runs" / "mmoe-seed0" / "run.json"
  run = json.loads(saved.read_text())
  del run["config"]["model"]["click_gate"]
  valid = run.pop("valid")
  saved.write_text(json.dumps(run))
  _bench(out, tiny_run["data_dir"])
  assert capsys.readouterr().out.count("done before") == 4
  again = json.loads((out / "results.json").read_text())["runs"][0]
  assert again["method"] == "mmoe" and again["valid"] == valid
  with pytest.raises(app.UsageError, match="mmoe-seed0.*another config"):
    _bench(out, tiny_run["data_dir"], seeds=1, methods="mmoe", steps=3)
  assert "[run" not in capsys.readouterr().out


@pytest.mark.slow  # two short training runs
def test_benchmark_on_independent_tasks_names_everything_after_the_labels(
    tmp_path, capsys):
  from adaftr_tf import experiments
  from tests.helpers.data import write_independent_dataset
  data_dir = write_independent_dataset(experiments.get_preset("tiny"),
                                       str(tmp_path / "data"), 512)
  out = tmp_path / "bench"
  run_main(benchmark_quality, [
      "--preset=tiny", "--seeds=1", "--methods=mmoe,adaftr_mmoe",
      f"--output_dir={out}", f"--data_dir={data_dir}", "--reference=mmoe",
      "--override=data.source=files", "--override=train.steps_per_epoch=3"],
           "bench")
  results = json.loads((out / "results.json").read_text())
  summary = results["summary"]["adaftr_mmoe"]
  for key in ("income_50k_auc", "never_married_auc", "mean_auc",
              "never_married_pred_obs_ratio"):
    assert summary[key]["n"] == 1, key
  assert "cvr_auc" not in summary
  assert set(results["paired"]["adaftr_mmoe"]) >= {"income_50k_auc",
                                                    "mean_auc"}
  assert results["paired_reference"]["adaftr_mmoe"]["baseline"] == "mmoe"
  table = (out / "results.md").read_text()
  assert table.startswith("| method | income_50k_auc | never_married_auc |")
  assert "Every method against mmoe" in table
  assert "Learning curves: never_married_auc per epoch" in table
  assert os.path.getsize(out / "metrics.png") > 0
  # Pairing with another output folder (here the same one: differences 0),
  # from the saved runs, nothing trained again.
  run_main(benchmark_quality, [
      "--preset=tiny", "--seeds=1", "--methods=mmoe,adaftr_mmoe",
      f"--output_dir={out}", f"--data_dir={data_dir}", f"--baseline_dir={out}",
      "--override=data.source=files", "--override=train.steps_per_epoch=3"],
           "bench")
  results = json.loads((out / "results.json").read_text())
  assert results["paired_baseline_dir"]["mmoe"]["mean_auc"]["mean"] == 0.0
  assert f"against the same method in {out}" in (out / "results.md").read_text()
  with pytest.raises(app.UsageError, match="holds no results.json"):
    run_main(benchmark_quality, [
        "--preset=tiny", "--methods=mmoe", f"--output_dir={out}",
        f"--data_dir={data_dir}", f"--baseline_dir={tmp_path}"], "bench")
  with pytest.raises(app.UsageError, match="--reference=ple is not among"):
    run_main(benchmark_quality, [
        "--preset=tiny", "--methods=mmoe", f"--output_dir={out}",
        f"--data_dir={data_dir}", "--reference=ple"], "bench")


@pytest.mark.slow  # two short training runs
def test_a_student_method_trains_its_teacher_first_and_reads_its_run(
    tiny_data, tmp_path, capsys):
  out = tmp_path / "bench"
  run_main(benchmark_quality, [
      "--preset=tiny", "--seeds=1", "--methods=adaftr_esmm_gate_teacher",
      f"--output_dir={out}", f"--data_dir={tiny_data}",
      "--override=train.steps_per_epoch=3", "--override=train.epochs=1"],
           "bench")
  printed = capsys.readouterr().out
  teacher = "adaftr_esmm_transfer_gate_linear_quantile_0.25"
  assert f"[run 1/2] {teacher} seed 0" in printed
  assert "[run 2/2] adaftr_esmm_gate_teacher seed 0" in printed
  results = json.loads((out / "results.json").read_text())
  student, = [r for r in results["runs"]
              if r["method"] == "adaftr_esmm_gate_teacher"]
  assert student["config"]["loss"]["teacher_dir"] == str(
      out / "runs" / f"{teacher}-seed0")
  assert 0 < student["test"]["cvr_auc"] < 1
