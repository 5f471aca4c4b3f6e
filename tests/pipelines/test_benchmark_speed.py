"""Tests of the `python -m pipelines.benchmark_speed` entrypoint: the speed
benchmark runs on a tiny config and emits every field.

No timing is asserted (DESIGN.md §5): speed is measured by the benchmark
command.
"""

import json

import pytest

from pipelines import benchmark_speed
from pipelines.benchmarks.speed import report
from tests.helpers.flags import run_main


ROW_FIELDS = ("examples_per_s", "steps_per_s", "timed_steps", "seconds",
              "cpu_seconds", "examples_per_cpu_s", "cpu_utilisation",
              "batch_size", "window_examples_per_s",
              "median_window_examples_per_s", "peak_rss_mb", "rss_before_mb",
              "table_rows", "wall_seconds", "repeats_examples_per_s",
              "group", "description", "spec", "error")
CORE_ROWS = ("input", "real/adaftr", "real/no_cl", "real_cached/adaftr",
             "reference/adaftr", "reference/no_cl")


@pytest.mark.slow  # the whole benchmark
def test_tiny_run_emits_every_field(tmp_path, capsys):
  output = tmp_path / "speed.json"
  # One step per execution traces Keras's train function once (quick).
  run_main(benchmark_speed, [
      "--preset=tiny", f"--output={output}",
      f"--data_dir={tmp_path / 'data'}", "--data_rows=1024",
      "--scale_data_rows=512", "--vocab_rows=1000,5000",
      "--scale_optimizers=adam", "--steps=2", "--warmup=1",
      "--input_steps=2", "--scale_steps=1", "--scale_warmup=1",
      "--scale_steps_per_execution=1", "--variants=", "--prototypes=",
      "--isolation=in_process",
      "--override=train.steps_per_execution=1"], "speed")
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
