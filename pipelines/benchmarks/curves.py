"""Learning curves of the quality benchmark: a metric per epoch, on the
training and validation splits, averaged over each method's runs (from the
run folders' history.json)."""

from __future__ import annotations

import json
import os
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from pipelines.benchmarks import tables
from pipelines.training import model_dir

# (method, seed) -> the run's folder (quality_plan.run_dir of an output folder).
RunFolder = Callable[[str, int], str]


def learning_curves(folder: RunFolder, runs: list[dict], metric: str
                    ) -> dict[str, dict]:
  """Per method, `metric` per epoch averaged over its runs, from each run
  folder's history.json: {method: {"train": [...], "valid": [...],
  "runs": n}}. "train" is the epoch's running value on the training split,
  "valid" the epoch's validation value; the epochs every run of the method
  has. A method any of whose runs lacks the history or the metric is left
  out."""
  histories: dict[str, list[dict]] = {}
  for run in runs:
    path = os.path.join(folder(run["method"], run["seed"]),
                        model_dir.HISTORY_FILE)
    history = None
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        history = json.load(f)
    histories.setdefault(run["method"], []).append(history)
  curves = {}
  for method, found in histories.items():
    if not all(h and metric in h and f"val_{metric}" in h for h in found):
      continue
    epochs = min(len(h[metric]) for h in found)
    curves[method] = {
        split: [float(np.mean([h[key][e] for h in found]))
                for e in range(epochs)]
        for split, key in (("train", metric), ("valid", f"val_{metric}"))}
    curves[method]["runs"] = len(found)
  return curves


def section(folder: RunFolder, runs: list[dict], tasks: Sequence[str],
            methods: Sequence[str]) -> tuple[dict, str]:
  """(curves, markdown) of the second task's AUC (the first's for a single
  task): CVR AUC for the funnel; ({}, "") without histories."""
  metric = f"{tasks[1] if len(tasks) > 1 else tasks[0]}_auc"
  curves = learning_curves(folder, runs, metric)
  if not curves:
    return {}, ""
  return curves, (f"Learning curves: {metric} per epoch, mean over each "
                  "method's runs, training split (the epoch's running value)"
                  " / validation split:\n\n"
                  + tables.learning_curve_table(curves, methods) + "\n\n")
