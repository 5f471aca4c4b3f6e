"""PNG plots of the quality benchmark (matplotlib, headless Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from adaftr_tf import objective as objective_lib  # noqa: E402
from pipelines.training import reliability_plot  # noqa: E402

AUC_PANELS = (("ctr_auc", "CTR AUC (all)"), ("cvr_auc", "CVR AUC (clicked)"),
              ("ctcvr_auc", "CTCVR AUC (all)"))


def auc_panels(summary: dict) -> tuple[tuple[str, str], ...]:
  """(key, title) per reported task's AUC: the funnel's three, or one per
  independent task (named after its label)."""
  tasks = objective_lib.task_names(next(iter(summary.values())))
  if tasks == objective_lib.FUNNEL_TASKS:
    return AUC_PANELS
  return tuple((f"{t}_auc", f"{t} AUC (all rows)") for t in tasks)


def metric_bars(summary: dict, methods: list[str], path: str) -> str:
  """One panel per AUC: mean per method with std error bars, oracle as a line."""
  panels = auc_panels(summary)
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
  for ax, (key, title) in zip(np.atleast_1d(axes), panels):
    means = [summary[m][key]["mean"] for m in methods]
    stds = [summary[m][key]["std"] for m in methods]
    ax.bar(range(len(methods)), means, yerr=stds, capsize=3, color="tab:blue")
    oracle = summary[methods[0]].get("oracle_" + key)
    if oracle is not None:
      ax.axhline(oracle["mean"], color="tab:red", linestyle="--", label="oracle")
      ax.legend(loc="lower right")
    low = min(np.subtract(means, stds))
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=60, ha="right", fontsize=8)
    ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def tau_plots(taus: dict, path: str, bins: int = 10) -> str:
  """Left: histogram of tau per method. Right: mean tau per decile of planted r.

  Args:
    taus: method -> (tau [n], planted r [n]) on the test split.
  """
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
  for method, (tau, r) in taus.items():
    left.hist(tau, bins=40, histtype="step", label=method)
    edges = np.quantile(r, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, bins - 1)
    centers = [r[which == b].mean() for b in range(bins)]
    means = [tau[which == b].mean() for b in range(bins)]
    right.plot(centers, means, marker="o", label=method)
  left.set_xlabel("tau")
  left.set_ylabel("test impressions")
  left.set_title("distribution of the learned temperature")
  left.legend(fontsize=8)
  right.set_xlabel("planted relatedness r (decile mean)")
  right.set_ylabel("mean tau")
  right.set_title("tau against planted relatedness")
  right.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def reliability(runs: list[dict], methods: list[str], path: str,
                part: str | None = None) -> str | None:
  """reliability.png: the reliability diagram (pipelines/training/
  reliability_plot.py) of each method's test report of its lowest seed
  (one model each: pooling the bins of several seeds would blur the seed
  spread of the calibration into one curve), or of its `part` (e.g.
  `calibrated`: after the calibrators); None when no run has bins (runs
  saved before reports carried them)."""
  reports = {}
  for run in sorted(runs, key=lambda r: r["seed"]):
    report = run["test"].get(part) if part else run["test"]
    if (run["method"] not in reports and report
        and reliability_plot.tasks_with_bins(report)):
      reports[run["method"]] = report
  ordered = {m: reports[m] for m in methods if m in reports}
  return reliability_plot.draw(ordered, path) if ordered else None
