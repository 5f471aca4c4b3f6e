"""Tests of the `python -m pipelines.benchmark_speed` entrypoint: the speed
benchmark runs on a tiny config and emits every field.

No timing is asserted (DESIGN.md §5): speed is measured by the benchmark
command.
"""

import json

import pytest
from absl import app

from pipelines import benchmark_speed
from pipelines.benchmarks.speed import report
from tests.helpers.flags import run_main


ROW_FIELDS = ("examples_per_s", "steps_per_s", "timed_steps", "seconds",
              "cpu_seconds", "examples_per_cpu_s", "cpu_utilisation",
              "batch_size", "window_examples_per_s",
              "median_window_examples_per_s", "peak_rss_mb", "rss_before_mb",
              "table_rows", "wall_seconds", "repeats_examples_per_s",
              "group", "description", "spec", "error")
CORE_ROWS = ("input/rows", "input/blocks", "real/adaftr", "real_rows/adaftr",
             "real/no_cl", "real_cached/adaftr", "reference/adaftr",
             "reference/no_cl")
LAYOUT_FIELDS = ("input_row", "real_row", "input_examples_per_s",
                 "decode_examples_per_cpu_s", "input_to_step_per_cpu",
                 "real_examples_per_s", "real_to_reference",
                 "input_peak_rss_mb")


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
      "--isolation=in_process", "--per_core=100000,2_000_000",
      "--memory_repeats=1",
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
  for name, target in result["layout_targets"].items():
    assert target["measured"] > 0 and isinstance(target["met"], bool), name
    assert f"| {name} (" in printed
  for layout, figures in result["layouts"].items():
    assert all(figures[f] for f in LAYOUT_FIELDS), (layout, figures)
  assert result["rows"]["input/rows"]["spec"]["data_dir"] != \
      result["rows"]["input/blocks"]["spec"]["data_dir"]
  assert result["per_core"]["step_rates"] == [100_000, 2_000_000]
  blocks = result["layouts"]["blocks"]["decode_examples_per_cpu_s"]
  assert result["per_core"]["cores"]["blocks"][1] == \
      pytest.approx(2_000_000 / blocks)
  assert "| 2,000,000 |" in printed and "host cores, row blocks" in printed
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
  assert result["settings"]["memory_repeats"] == 1
  assert result["isolation"] == "in_process"


@pytest.mark.parametrize("flag, message", [
    ("--per_core=fast", "--per_core='fast' must be a comma-separated list"),
    ("--per_core=1000,0", "--per_core='1000,0': every value must be >= 1"),
    ("--rows=input", "--rows: unknown ['input']"),
    ("--vocab_rows=1e4", "--vocab_rows='1e4' must be"),
    ("--memory_repeats=0", "--memory_repeats must be >= 1"),
])
def test_bad_flag_values_are_one_line_usage_errors(tmp_path, flag, message):
  # Raised before any data is written (cli.run prints it as one line).
  with pytest.raises(app.UsageError) as err:
    run_main(benchmark_speed, ["--preset=tiny", f"--output={tmp_path}/s.json",
                               f"--data_dir={tmp_path}/data", flag], "speed")
  assert message in str(err.value) and "\n" not in str(err.value)
  assert not (tmp_path / "data").exists()
