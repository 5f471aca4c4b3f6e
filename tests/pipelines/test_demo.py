"""The main job (`make demo`) end to end on the tiny preset."""

import json

from absl import flags
from absl.testing import flagsaver
import pytest

from pipelines import cli
from pipelines import demo


def _run_demo(out, tiny_data, *extra) -> None:
  """Runs the demo's main on the tiny preset; it must exit with success."""
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as exit_info:
      cli.run(demo.main, argv=[
          "demo", "--preset=tiny", f"--output_dir={out}",
          f"--data_dir={tiny_data}", "--verbose=0", *extra])
  assert exit_info.value.code in (None, 0)


@pytest.mark.slow
def test_demo_trains_reports_exports_and_reloads(tmp_path, tiny_data, capsys):
  out = tmp_path / "demo"
  _run_demo(out, tiny_data, "--override=train.epochs=2")
  printed = capsys.readouterr().out
  results = json.loads((out / "results.json").read_text())
  for task in ("ctr", "cvr", "ctcvr"):
    assert 0.5 < results["test"][f"{task}_auc"] <= 1.0, task
    assert f"{task.upper()} (" in printed
  assert results["test"]["num_examples"] == 1024
  assert results["config"]["model"]["name"] == "adaftr"
  serving = results["serving"]
  assert serving["num_scored"] == demo.NUM_SCORED
  assert serving["max_abs_diff"] <= demo.MAX_SERVING_DIFF
  assert (out / "export" / "1" / "saved_model.pb").exists()
  assert "reloaded in a fresh process" in printed
  assert "tau: mean" in printed
  # AdaFTR and its backbone, the export chosen on validation.
  candidates = results["candidates"]
  assert set(candidates) == {"adaftr", "multitask (backbone alone)"}
  key = "ctcvr_auc"   # the tiny preset's checkpoint metric is val_ctcvr_auc
  best = max(candidates, key=lambda name: candidates[name]["valid"][key])
  assert results["exported"] == best
  assert f"exported: {best} (the higher validation {key})" in printed
  backbone = json.loads((out / "backbone" / "config.json").read_text())
  assert backbone["model"]["name"] == "multitask"
  assert {k: v for k, v in backbone.items() if k != "model"} == {
      k: v for k, v in results["config"].items() if k != "model"}


def test_validation_choice_reads_the_checkpoint_metric_only():
  candidates = {"adaftr": {"valid": {"ctcvr_auc": 0.90, "cvr_auc": 0.80}},
                "multitask": {"valid": {"ctcvr_auc": 0.91, "cvr_auc": 0.70}}}
  assert demo.validation_choice(candidates, "val_ctcvr_auc") == "multitask"
  assert demo.validation_choice(candidates, "val_cvr_auc") == "adaftr"


def test_the_backbone_is_the_config_without_the_alignment():
  from adaftr_tf import experiments
  config = experiments.get_preset("demo")
  backbone = demo.backbone_of(config)
  assert backbone.model.name == "multitask" and not backbone.uses_alignment
  assert backbone == experiments.get_preset("demo_mmoe")
  assert demo.backbone_of(backbone) is None


@pytest.mark.slow
def test_demo_without_the_backbone_comparison(tmp_path, tiny_data, capsys):
  out = tmp_path / "demo"
  _run_demo(out, tiny_data, "--nocompare_backbone", "--override=train.epochs=1")
  results = json.loads((out / "results.json").read_text())
  assert list(results["candidates"]) == ["adaftr"]
  assert results["exported"] == "adaftr" and "comparison" not in results
  assert not (out / "backbone").exists()
  assert "exported:" not in capsys.readouterr().out


def _test_report(with_groups: bool) -> dict:
  report = {"num_examples": 100, "click_rate": 0.05, "conversion_rate": 0.01}
  for task in ("ctr", "cvr", "ctcvr"):
    report.update({f"{task}_auc": 0.7, f"{task}_logloss": 0.2,
                   f"{task}_ece": 0.01, f"{task}_pred_obs_ratio": 1.1,
                   f"{task}_pred_obs_ratio_se": 0.05})
    if with_groups:
      report.update({f"{task}_gauc": 0.6125, f"{task}_gauc_groups": 8,
                     f"{task}_gauc_excluded": 2})
  if with_groups:
    report["group_field"] = "categorical_1"
  return report


def test_results_table_has_a_gauc_column():
  serving = {"path": "/x", "num_scored": 4, "max_abs_diff": 0.0}
  table = demo.results_table(_test_report(True), serving, {"train": 1.0})
  header, _, ctr = table.splitlines()[:3]
  assert header.split()[:5] == ["task", "AUC", "GAUC", "oracle", "AUC"]
  assert "0.7000  0.6125" in ctr
  assert ("GAUC: AUC per value of categorical_1, weighted by rows; "
          "single-class groups left out: ctr 2 of 10, cvr 2 of 10, "
          "ctcvr 2 of 10") in table
  without = demo.results_table(_test_report(False), serving, {"train": 1.0})
  assert "0.7000  —" in without.splitlines()[2]
  assert "GAUC: AUC per value" not in without


def test_comparison_table_shows_auc_and_gauc_per_task():
  report = lambda auc: {"ctr_auc": auc, "cvr_auc": auc, "ctcvr_auc": auc,
                        "ctr_gauc": auc - 0.1, "cvr_gauc": auc - 0.1,
                        "ctcvr_gauc": auc - 0.1}
  candidates = {"adaftr": {"valid": {"ctcvr_auc": 0.9}, "test": report(0.8)},
                "multitask": {"valid": {"ctcvr_auc": 0.91},
                              "test": {"ctr_auc": 0.7, "cvr_auc": 0.7,
                                       "ctcvr_auc": 0.7}}}   # no GAUC
  lines = demo.comparison_table(candidates, "multitask",
                                "val_ctcvr_auc").splitlines()
  assert lines[0].split() == [
      "model", "valid", "ctcvr_auc", "test", "ctr_auc", "test", "cvr_auc",
      "test", "ctcvr_auc", "test", "ctr_gauc", "test", "cvr_gauc", "test",
      "ctcvr_gauc"]
  assert lines[2].split()[-3:] == ["0.7000", "0.7000", "0.7000"]
  assert lines[3].split()[-3:] == ["—", "—", "—"]
