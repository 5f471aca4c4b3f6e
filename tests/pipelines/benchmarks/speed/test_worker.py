"""Tests of pipelines/benchmarks/speed/worker.py: a row measured in its own
process."""

import pytest

from pipelines.benchmarks.speed import harness
from pipelines.benchmarks.speed import plan as plan_lib
from pipelines.benchmarks.speed import report
from tests.helpers.benchmarks import speed_settings


@pytest.mark.slow  # a benchmark worker process
def test_worker_runs_the_paired_phase_in_its_own_process(tmp_path):
  from adaftr_tf import experiments
  config = experiments.get_preset("tiny")
  dirs, _ = harness.prepare_data(config, str(tmp_path), 512, [], 512,
                                 log=lambda _: None)
  data_dir = dirs[config.data.layout]
  settings = speed_settings(preset="tiny", overrides=(
      "train.steps_per_execution=1",), warmup=1,
      paired=("no_cl", "transfer_gate", "keras_auc", "gate_teacher",
              "gate_teacher_crossfit_2"),
      paired_rounds=2, paired_steps=1)
  [row] = plan_lib.paired_rows(settings, data_dir)
  result = harness._run_subprocess(row.spec, str(tmp_path), 300)
  assert list(result["entries"]) == ["adaftr", "no_cl", "transfer_gate",
                                     "keras_auc", "gate_teacher",
                                     "gate_teacher_crossfit_2"]
  for name, entry in result["entries"].items():
    assert entry["examples_per_s"] > 0 and entry["timed_steps"] == 2, name
    assert entry["relative_per_cpu"] > 0, name
  assert result["entries"]["adaftr"]["relative"] == 1.0
  assert result["peak_rss_mb"] >= result["rss_before_mb"] > 0
  assert "| keras_auc |" in report.paired_table(result)
