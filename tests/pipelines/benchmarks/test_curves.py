"""Tests of pipelines/benchmarks/curves.py: learning curves from the runs'
histories."""

import functools
import json
import os

import numpy as np

from pipelines.benchmarks import curves
from pipelines.benchmarks import quality_plan

HISTORIES = {("esmm", 0): ([0.70, 0.80, 0.90], [0.72, 0.76, 0.77]),
             ("esmm", 1): ([0.72, 0.82], [0.74, 0.78]),
             ("adaftr_esmm", 0): ([0.71], [0.75])}


def _runs_with_histories(tmp_path):
  """Run folders with HISTORIES' cvr_auc; an mmoe run without a history."""
  folder = functools.partial(quality_plan.run_dir, str(tmp_path))
  for (method, seed), (train, valid) in HISTORIES.items():
    os.makedirs(folder(method, seed))
    with open(os.path.join(folder(method, seed), "history.json"), "w") as f:
      json.dump({"cvr_auc": train, "val_cvr_auc": valid}, f)
  runs = [{"method": m, "seed": s} for m, s in [*HISTORIES, ("mmoe", 0)]]
  return folder, runs


def test_learning_curves_average_each_methods_histories(tmp_path):
  """Per epoch, the mean over a method's runs of the training and
  validation values in their history.json, over the epochs every run has;
  a method with a run lacking its history (or the metric) is left out."""
  folder, runs = _runs_with_histories(tmp_path)
  found = curves.learning_curves(folder, runs, "cvr_auc")
  assert set(found) == {"esmm", "adaftr_esmm"}   # mmoe: no history
  assert found["esmm"]["runs"] == 2
  np.testing.assert_allclose(found["esmm"]["train"], [0.71, 0.81])
  np.testing.assert_allclose(found["esmm"]["valid"], [0.73, 0.77])
  assert curves.learning_curves(folder, runs, "ctr_auc") == {}


def test_the_section_tables_the_second_tasks_auc(tmp_path):
  """The funnel's curves are CVR AUC's, "train / valid" per epoch in the
  methods' order, — past a method's last epoch; none without histories."""
  folder, runs = _runs_with_histories(tmp_path)
  found, text = curves.section(folder, runs, ("ctr", "cvr", "ctcvr"),
                               ["esmm", "mmoe", "adaftr_esmm"])
  assert set(found) == {"esmm", "adaftr_esmm"}
  assert text.startswith("Learning curves: cvr_auc per epoch")
  assert "| esmm | 2 | 0.7100 / 0.7300 | 0.8100 / 0.7700 |" in text
  assert "| adaftr_esmm | 1 | 0.7100 / 0.7500 | — |" in text
  assert text.index("| esmm |") < text.index("| adaftr_esmm |")
  assert "mmoe" not in text
  assert curves.section(folder, runs, ("ctr", "income"), ["esmm"]) == ({}, "")
