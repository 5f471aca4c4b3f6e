"""Reliability diagrams (PNG) of evaluation reports, one panel per task.

Drawn from the reports' `{task}_reliability` bins (adaftr_tf/metrics.py
`reliability_bins`: equal-mass bins of the predicted probability, each with
its row count, mean prediction and observed rate), so a stored report
(valid_metrics.json, a benchmark's run.json) is enough to redraw it. Used by
the training job (`reliability_valid.png` in the model dir) and by the
quality benchmark (pipelines/benchmarks/plots.py, `reliability.png`); it
lives here because training may not import the benchmarks.

matplotlib's object API (no pyplot, no global backend), written through
tf.io.gfile so that gs:// model dirs work.
"""

from __future__ import annotations

import io
from typing import Mapping

from matplotlib.figure import Figure
import numpy as np
import tensorflow as tf

from adaftr_tf import objective as objective_lib

VALID_FILE = "reliability_valid.png"   # the training job's, in the model dir
_FUNNEL_SCOPES = {"ctr": "all impressions", "cvr": "clicked impressions",
                  "ctcvr": "all impressions"}


def tasks_with_bins(report: Mapping) -> tuple[str, ...]:
  """The reported tasks of `report` (objective.task_names) that have
  reliability bins, in order."""
  return tuple(t for t in objective_lib.task_names(report)
               if report.get(f"{t}_reliability"))


def _title(task: str) -> str:
  """`CTR (all impressions)` for the funnel's tasks, `{label} (all rows)`."""
  if task in _FUNNEL_SCOPES:
    return f"{task.upper()} ({_FUNNEL_SCOPES[task]})"
  return f"{task} (all rows)"


def _bins(report: Mapping, task: str):
  """(mean predicted, observed, rows, 2 s.e. of observed) per bin, `[b]`."""
  bins = report.get(f"{task}_reliability") or []
  pred, observed, count = (np.array([b[k] for b in bins], np.float64)
                           for k in ("mean_pred", "observed", "count"))
  return pred, observed, count, 2 * np.sqrt(
      observed * (1 - observed) / np.maximum(count, 1))


def _panel(top, bottom, reports: Mapping[str, Mapping], task: str) -> None:
  """Top: observed vs mean predicted rate per bin (± 2 s.e.) of each report
  and the diagonal; bottom: rows per bin, one bar per report."""
  width, high = 0.8 / len(reports), 0.0
  for k, (label, report) in enumerate(reports.items()):
    pred, observed, count, error = _bins(report, task)
    if not len(pred):
      continue
    ece = report.get(f"{task}_ece", float("nan"))
    top.errorbar(pred, observed, yerr=error, marker="o", markersize=3,
                 capsize=2, linewidth=1, label=f"{label} (ECE {ece:.4f})")
    offset = (k - (len(reports) - 1) / 2) * width
    bottom.bar(np.arange(1, len(pred) + 1) + offset, count, width=width)
    high = np.nanmax([high, *pred, *(observed + error)])
  high = float(high) * 1.05 if np.isfinite(high) and high > 0 else 1.0
  top.plot([0, high], [0, high], color="black", linestyle="--",
           linewidth=1, label="calibrated")
  top.set_xlim(0, high)
  top.set_ylim(0, high)
  top.set_xlabel("mean predicted probability (bin)")
  top.set_ylabel("observed rate (± 2 s.e.)")
  top.set_title(_title(task))
  top.legend(fontsize=7, loc="upper left")
  bottom.set_xlabel("bin (equal mass, by predicted probability)")
  bottom.set_ylabel("rows")


def draw(reports: Mapping[str, Mapping], path: str, dpi: int = 110) -> str:
  """Writes the reliability diagram of `reports` to `path` (PNG).

  Args:
    reports: label (a split, a method) -> evaluation report (None: left
      out); one column of panels per task of the first report that has
      reliability bins.
    path: the PNG's path (any tf.io.gfile path).

  Returns:
    `path`.

  Raises:
    ValueError: no report, or the first one has no reliability bins.
  """
  reports = {label: r for label, r in reports.items() if r}
  if not reports:
    raise ValueError("no report to draw")
  tasks = tasks_with_bins(next(iter(reports.values())))
  if not tasks:
    raise ValueError("the report has no {task}_reliability bins")
  fig = Figure(figsize=(4.8 * len(tasks), 6.5))
  grid = fig.add_gridspec(2, len(tasks), height_ratios=(3, 1))
  for column, task in enumerate(tasks):
    _panel(fig.add_subplot(grid[0, column]), fig.add_subplot(grid[1, column]),
           reports, task)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=dpi)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())
  return path
