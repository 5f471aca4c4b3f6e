"""Tests of pipelines/benchmarks/speed/harness.py: a failing row is reported;
repeated rows keep the fastest run's speed and the median peak memory."""

from pipelines.benchmarks.speed import harness
from pipelines.benchmarks.speed import plan as plan_lib


def test_worker_failure_names_the_error(tmp_path):
  spec = {"phase": "nope", "preset": "tiny", "overrides": [],
          "data_dir": str(tmp_path), "steps": 1, "warmup": 1}
  row = plan_lib.Row("x", "core", "x", spec)
  result = harness._run_row(row, "in_process", str(tmp_path), 10)
  assert "unknown phase 'nope'" in result["error"]


def test_repeats_keep_the_fastest_speed_and_the_median_peak(monkeypatch):
  runs = iter([{"examples_per_s": 10.0, "peak_rss_mb": 900.0},   # core
               {"examples_per_s": 5.0, "peak_rss_mb": 100.0},    # scale
               {"examples_per_s": 30.0, "peak_rss_mb": 700.0},
               {"error": "RuntimeError: lost", "peak_rss_mb": 1.0},
               {"examples_per_s": 20.0, "peak_rss_mb": 800.0}])
  monkeypatch.setattr(harness, "_run_row", lambda *_: dict(next(runs)))
  rows = [plan_lib.Row("input/blocks", "core", "x", {}),
          plan_lib.Row("scale/1/adam", "scale", "y", {})]
  logged = []
  result = harness.run_rows(rows, "in_process", "", 1, logged.append,
                            repeats=2, memory_repeats=4)
  core, scale = result["input/blocks"], result["scale/1/adam"]
  # 4 rounds of the core row (max of repeats and memory_repeats), one of
  # the scale row; the failed run counts in neither figure.
  assert len(logged) == 5
  assert core["repeats_examples_per_s"] == [10.0, 30.0, None, 20.0]
  assert core["examples_per_s"] == 30.0 and core["error"] is None
  assert core["peak_rss_mb"] == 800.0           # median of 900, 700, 800
  assert core["fastest_peak_rss_mb"] == 700.0
  assert core["repeats_peak_rss_mb"] == [900.0, 700.0, 1.0, 800.0]
  assert scale["peak_rss_mb"] == scale["fastest_peak_rss_mb"] == 100.0


def test_a_row_that_always_fails_keeps_its_error(monkeypatch):
  monkeypatch.setattr(harness, "_run_row",
                      lambda *_: {"error": "RuntimeError: lost"})
  rows = [plan_lib.Row("input/rows", "core", "x", {})]
  result = harness.run_rows(rows, "in_process", "", 1, lambda _: None,
                            memory_repeats=2)
  assert result["input/rows"]["error"] == "RuntimeError: lost"
  assert "fastest_peak_rss_mb" not in result["input/rows"]
