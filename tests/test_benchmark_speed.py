"""The speed benchmark runs on a tiny config and emits every field.

No timing is asserted (DESIGN.md §5): speed is measured by the benchmark
command. The prototypes it can measure are checked for equivalence with what
they replace.
"""

import json
import os
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import tasks
from pipelines import benchmark_speed
from pipelines.benchmarks.speed import harness
from pipelines.benchmarks.speed import memory
from pipelines.benchmarks.speed import plan as plan_lib
from pipelines.benchmarks.speed import prototypes
from pipelines.benchmarks.speed import report

FLAGS = flags.FLAGS
ROW_FIELDS = ("examples_per_s", "steps_per_s", "timed_steps", "seconds",
              "cpu_seconds", "examples_per_cpu_s", "cpu_utilisation",
              "batch_size", "window_examples_per_s",
              "median_window_examples_per_s", "peak_rss_mb", "rss_before_mb",
              "table_rows", "wall_seconds", "repeats_examples_per_s",
              "group", "description", "spec", "error")
CORE_ROWS = ("input", "real/adaftr", "real/no_cl", "real_cached/adaftr",
             "reference/adaftr", "reference/no_cl")


def test_tiny_run_emits_every_field(tmp_path, capsys):
  output = tmp_path / "speed.json"
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    # One step per execution traces Keras's train function once (quick).
    FLAGS(["speed", "--preset=tiny", f"--output={output}",
           f"--data_dir={tmp_path / 'data'}", "--data_rows=1024",
           "--scale_data_rows=512", "--vocab_rows=1000,5000",
           "--scale_optimizers=adam", "--steps=2", "--warmup=1",
           "--input_steps=2", "--scale_steps=1", "--scale_warmup=1",
           "--scale_steps_per_execution=1", "--variants=", "--prototypes=",
           "--isolation=in_process",
           "--override=train.steps_per_execution=1"])
    benchmark_speed.main(["speed"])
  printed = capsys.readouterr().out
  result = json.loads(output.read_text())
  for key in ("ratio_real_to_reference", "ratio_adaftr_to_no_cl",
              "ratio_input_to_training", *report.EXTRA_RATIOS):
    assert result[key] > 0 and result["cpu_" + key] > 0, key
  for name, target in result["targets"].items():
    assert isinstance(target["met"], bool), name
    assert isinstance(target["met_per_cpu"], bool), name
    assert f"| {name} (" in printed
  scale = ("scale/1000/adam", "scale/5000/adam")
  assert sorted(result["rows"]) == sorted(CORE_ROWS + scale)
  for key, row in result["rows"].items():
    missing = [f for f in ROW_FIELDS if f not in row]
    assert not missing, (key, missing)
    assert row["error"] is None and row["examples_per_s"] > 0, key
    assert row["peak_rss_mb"] > 0 and row["batch_size"] == 128, key
    assert f"| {key} |" in printed
  assert [result["rows"][k]["table_rows"] for k in scale] == [1000, 5000]
  assert result["rows"]["reference/adaftr"]["traces"] == 1
  assert result["rows"]["scale/5000/adam"]["relative_to_adam"] == 1.0
  for key in ("cpu_count", "cpu_model", "tensorflow", "load_average_start",
              "load_average_end"):
    assert key in result["machine"], key
  assert result["config"]["batch_size"] == 128
  assert result["settings"]["steps"] == 2
  assert result["isolation"] == "in_process"


def test_worker_runs_the_paired_phase_in_its_own_process(tmp_path):
  from adaftr_tf import experiments
  config = experiments.get_preset("tiny")
  data_dir, _ = harness.prepare_data(config, str(tmp_path), 512, [],
                                             512, log=lambda _: None)
  settings = _settings(preset="tiny", overrides=(
      "train.steps_per_execution=1",), warmup=1, paired=("no_cl", "keras_auc"),
                       paired_rounds=2, paired_steps=1)
  [row] = plan_lib.paired_rows(settings, data_dir)
  result = harness._run_subprocess(row.spec, str(tmp_path), 300)
  assert list(result["entries"]) == ["adaftr", "no_cl", "keras_auc"]
  for name, entry in result["entries"].items():
    assert entry["examples_per_s"] > 0 and entry["timed_steps"] == 2, name
    assert entry["relative_per_cpu"] > 0, name
  assert result["entries"]["adaftr"]["relative"] == 1.0
  assert result["peak_rss_mb"] >= result["rss_before_mb"] > 0
  assert "| keras_auc |" in report.paired_table(result)


def test_worker_failure_names_the_error(tmp_path):
  spec = {"phase": "nope", "preset": "tiny", "overrides": [],
          "data_dir": str(tmp_path), "steps": 1, "warmup": 1}
  row = plan_lib.Row("x", "core", "x", spec)
  result = harness._run_row(row, "in_process", str(tmp_path), 10)
  assert "unknown phase 'nope'" in result["error"]


def _settings(**kwargs):
  values = dict(preset="demo", overrides=("train.batch_size=2048",), steps=5,
                warmup=3, input_steps=7, reference_batches=2,
                steps_per_execution=4, variants=("spe1", "jit"),
                prototypes=("keras_auc", "no_metrics"),
                scale_steps=3, scale_warmup=1, scale_steps_per_execution=2)
  values.update(kwargs)
  return plan_lib.Settings(**values)


def test_plan_rows_and_step_rounding():
  s = _settings()
  rows = {r.key: r for r in plan_lib.core_rows(s, "D")
          + plan_lib.extra_rows(s, "D") + plan_lib.scale_rows(s, {10: "S"})}
  assert list(rows) == [
      "input", "real/adaftr", "real/no_cl", "real_cached/adaftr",
      "reference/adaftr", "reference/no_cl", "variant/spe1", "variant/jit", "prototype/keras_auc",
      "prototype/no_metrics", "prototype/reference_no_metrics",
      "scale/10/adam", "scale/10/lazy_adam", "scale/10/adagrad"]
  fit = rows["real/adaftr"].spec
  assert (fit["steps"], fit["warmup"]) == (8, 4)   # whole executions of 4
  cached = rows["real_cached/adaftr"].spec
  assert (cached["phase"], cached["steps"], cached["warmup"]) == (
      "fit_cached", 8, 4)
  assert fit["overrides"] == ["train.batch_size=2048", "model.name=adaftr"]
  assert rows["real/no_cl"].spec["overrides"][-1] == "model.name=multitask"
  assert (rows["reference/adaftr"].spec["steps"], rows["input"].spec["steps"]) \
      == (5, 7)
  assert (rows["variant/spe1"].spec["steps"], rows["variant/spe1"].spec[
      "warmup"]) == (5, 3)
  assert rows["prototype/keras_auc"].spec["prototypes"] == ["keras_auc"]
  lazy = rows["scale/10/lazy_adam"].spec
  assert "train.optimizer=lazy_adam" in lazy["overrides"]
  assert lazy["prototypes"] == [] and lazy["data_dir"] == "S"
  assert (lazy["steps"], lazy["warmup"]) == (4, 2)


def test_flag_parsing_names_the_bad_value():
  assert plan_lib.parse_int_list("10_000, 5", "vocab_rows") == [10000, 5]
  assert plan_lib.parse_int_list("", "vocab_rows") == []
  with pytest.raises(ValueError, match="--vocab_rows"):
    plan_lib.parse_int_list("1e4", "vocab_rows")
  with pytest.raises(ValueError, match="must be >= 1"):
    plan_lib.parse_int_list("0", "vocab_rows")
  assert plan_lib.parse_names("all", ("a", "b"), "x") == ["a", "b"]
  with pytest.raises(ValueError, match="unknown.*nope.*valid"):
    plan_lib.parse_names("a,nope", ("a", "b"), "variants")
  with pytest.raises(ValueError, match="unknown prototype"):
    prototypes.check(["nope"])


def test_summary_ratios_and_targets():
  rows = {"input": {"examples_per_s": 50.0, "examples_per_cpu_s": 30.0},
          "real/adaftr": {"examples_per_s": 9.0, "examples_per_cpu_s": 5.0},
          "real/no_cl": {"examples_per_s": 12.0, "examples_per_cpu_s": 6.0},
          "reference/adaftr": {"examples_per_s": 10.0,
                               "examples_per_cpu_s": 5.0},
          "reference/no_cl": {"examples_per_s": 12.0},
          "variant/jit": {"examples_per_s": 18.0, "examples_per_cpu_s": 4.0,
                          "group": "variant"}}
  summary = report.summarise(rows)
  assert summary["ratio_real_to_reference"] == pytest.approx(0.9)
  assert summary["cpu_ratio_real_to_reference"] == pytest.approx(1.0)
  assert summary["cpu_ratio_input_to_training"] == pytest.approx(6.0)
  assert summary["cpu_ratio_real_to_reference_no_cl"] is None
  assert summary["targets"]["adaftr_to_no_cl"]["met_per_cpu"] is False
  assert rows["variant/jit"]["relative_to_real_adaftr_per_cpu"] == \
      pytest.approx(0.8)
  assert summary["ratio_adaftr_to_no_cl"] == pytest.approx(0.75)
  assert summary["ratio_input_to_training"] == pytest.approx(50 / 9)
  met = {k: t["met"] for k, t in summary["targets"].items()}
  assert met == {"real_to_reference": True, "adaftr_to_no_cl": False,
                 "input_to_training": True}
  assert rows["variant/jit"]["relative_to_real_adaftr"] == pytest.approx(2.0)
  assert report.summarise({})["targets"]["real_to_reference"]["met"] is None


def test_memory_readings():
  assert memory.peak_rss_mb() >= memory.current_rss_mb() > 0
  block = np.ones(64 << 20, np.uint8)   # 64 MiB, touched
  peak = memory.peak_rss_mb()
  del block
  if memory.reset_peak():
    assert memory.peak_rss_mb() < peak


def test_prototypes_swap_only_their_part_and_keep_the_loss(tiny_data):
  """Each measurement variant computes the library's loss with another part."""
  from adaftr_tf import experiments
  from adaftr_tf import features as F
  from pipelines.data import reader
  config = experiments.config_of("tiny")
  schema = F.FeatureSchema.load(tiny_data)
  batch = next(iter(reader.make_dataset(tiny_data, "train", schema, 64,
                                        training=False)))

  def loss_of(names):
    tf_keras.utils.set_random_seed(1)
    model = prototypes.build_model(config, schema, names)
    return model, float(model.compute_loss(batch, training=False))

  library, expected = loss_of([])
  for names in (["keras_auc"], ["no_metrics"], ["unfused_info_nce"],
                ["uncompiled_info_nce"], ["keras_auc", "unfused_info_nce"]):
    model, loss = loss_of(names)
    assert loss == pytest.approx(expected, rel=1e-5), names
  keras_auc, _ = loss_of(["keras_auc"])
  aucs = [m for m in keras_auc.metrics if m.name == "ctr_auc"]
  assert [type(m) for m in aucs] == [tf_keras.metrics.AUC]
  assert type(library.alignment_task.contrastive) is tasks.ContrastiveTask
  unfused, _ = loss_of(["unfused_info_nce"])
  assert isinstance(unfused.alignment_task.contrastive,
                    prototypes.UnfusedContrastive)
  silent, _ = loss_of(["no_metrics"])
  assert all(float(m.result()) == 0 for m in silent.metrics
             if m.name.endswith("_auc"))
  with pytest.raises(ValueError, match="replace the same part twice"):
    prototypes.check(["keras_auc", "no_metrics"])
