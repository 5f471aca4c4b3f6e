"""Tests of pipelines/benchmarks/speed/report.py: ratios and targets."""

import pytest

from pipelines.benchmarks.speed import report


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
