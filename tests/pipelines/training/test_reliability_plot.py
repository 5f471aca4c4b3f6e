"""Tests of pipelines/training/reliability_plot.py: a PNG per report set."""

import numpy as np
import pytest

from adaftr_tf import evaluation
from adaftr_tf import features as F
from adaftr_tf import objective as objective_lib
from pipelines.training import reliability_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _collected(seed=0, n=3000):
  rng = np.random.default_rng(seed)
  p_click = rng.beta(1.0, 12.0, n)
  p_cvr = rng.beta(2.0, 12.0, n)
  click = (rng.random(n) < p_click).astype(np.float32)
  conversion = click * (rng.random(n) < p_cvr)
  return {F.CLICK: click, F.CONVERSION: conversion.astype(np.float32),
          F.CTR: 1.2 * p_click, F.CVR: p_cvr, F.CTCVR: 1.2 * p_click * p_cvr,
          evaluation.FEATURE_PREFIX + "user": rng.integers(0, 20, n)}


def _written(path):
  data = path.read_bytes()
  assert data.startswith(PNG_MAGIC) and len(data) > 5000
  return data


def test_funnel_reports_give_one_panel_per_task(tmp_path):
  report = evaluation.report(_collected(), group_field="user")
  assert reliability_plot.tasks_with_bins(report) == ("ctr", "cvr", "ctcvr")
  second = evaluation.report(_collected(seed=1))
  path = tmp_path / reliability_plot.VALID_FILE
  assert reliability_plot.draw({"valid": report, "other": second,
                                "missing": None}, str(path)) == str(path)
  _written(path)


def test_independent_reports_are_drawn_under_their_label_names(tmp_path):
  objective = objective_lib.Objective(F.INDEPENDENT, ("income", "married"))
  collected = _collected()
  collected[F.CONVERSION] = (np.arange(3000) % 3 == 0).astype(np.float32)
  report = evaluation.report(collected, objective=objective)
  assert reliability_plot.tasks_with_bins(report) == ("income", "married")
  reliability_plot.draw({"test": report}, str(tmp_path / "r.png"))
  _written(tmp_path / "r.png")


def test_reports_without_bins_are_refused(tmp_path):
  with pytest.raises(ValueError, match="no report to draw"):
    reliability_plot.draw({"valid": None}, str(tmp_path / "r.png"))
  with pytest.raises(ValueError, match="no {task}_reliability bins"):
    reliability_plot.draw({"old": {"ctr_auc": 0.7}}, str(tmp_path / "r.png"))
