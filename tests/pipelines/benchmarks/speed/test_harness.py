"""Tests of pipelines/benchmarks/speed/harness.py: a failing row is reported."""

from pipelines.benchmarks.speed import harness
from pipelines.benchmarks.speed import plan as plan_lib


def test_worker_failure_names_the_error(tmp_path):
  spec = {"phase": "nope", "preset": "tiny", "overrides": [],
          "data_dir": str(tmp_path), "steps": 1, "warmup": 1}
  row = plan_lib.Row("x", "core", "x", spec)
  result = harness._run_row(row, "in_process", str(tmp_path), 10)
  assert "unknown phase 'nope'" in result["error"]
