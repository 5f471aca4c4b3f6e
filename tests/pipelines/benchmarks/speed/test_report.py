"""Tests of pipelines/benchmarks/speed/report.py: ratios and targets."""

import pytest

from pipelines.benchmarks.speed import report


def test_summary_ratios_and_targets():
  rows = {"input/blocks": {"examples_per_s": 50.0,
                           "examples_per_cpu_s": 30.0},
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


def test_layout_figures_targets_and_per_core_projection():
  rows = {"input/rows": {"examples_per_s": 90.0, "examples_per_cpu_s": 60.0,
                         "peak_rss_mb": 800.0},
          "input/blocks": {"examples_per_s": 400.0,
                           "examples_per_cpu_s": 250.0, "peak_rss_mb": 700.0},
          "real/adaftr": {"examples_per_s": 9.6, "examples_per_cpu_s": 5.0},
          "real_rows/adaftr": {"examples_per_s": 7.0,
                               "examples_per_cpu_s": 4.0},
          "reference/adaftr": {"examples_per_s": 10.0,
                               "examples_per_cpu_s": 10.0}}
  summary = report.summarise(rows, "blocks", step_rates=[1_000, 500_000])
  blocks, per_row = summary["layouts"]["blocks"], summary["layouts"]["rows"]
  assert (blocks["real_row"], per_row["real_row"]) == ("real/adaftr",
                                                       "real_rows/adaftr")
  assert blocks["decode_examples_per_cpu_s"] == 250.0
  assert blocks["input_to_step_per_cpu"] == pytest.approx(25.0)
  assert per_row["input_to_step_per_cpu"] == pytest.approx(6.0)
  assert per_row["real_to_reference"] == pytest.approx(0.7)
  assert per_row["input_peak_rss_mb"] == 800.0
  targets = summary["layout_targets"]
  assert {k: (t["measured"], t["met"]) for k, t in targets.items()} == {
      "input_to_step": (pytest.approx(25.0), True),
      "real_to_reference": (pytest.approx(0.96), True),
      "input_memory_blocks_to_rows": (pytest.approx(0.875), True)}
  # The projection: step rate / the layout's decode examples per CPU-second.
  cores = summary["per_core"]["cores"]
  assert cores["blocks"] == [pytest.approx(1_000 / 250),
                             pytest.approx(500_000 / 250)]
  assert cores["rows"] == [pytest.approx(1_000 / 60),
                           pytest.approx(500_000 / 60)]
  table = report.projection_table(summary)
  assert "| 500,000 | 8,333.3 | 2,000.0 |" in table
  rows["input/blocks"]["peak_rss_mb"] = 801.0
  missed = report.summarise(rows)["layout_targets"]
  assert missed["input_memory_blocks_to_rows"]["met"] is False
  assert "| ≤ 1 | **no** |" in report.layout_targets_table(
      report.summarise(rows))
  assert report.summarise({})["layout_targets"]["input_to_step"]["met"] is None
