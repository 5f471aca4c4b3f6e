"""The quality benchmark's tables: which metrics, and their markdown.

The columns follow the reported tasks (adaftr_tf/objective.py): ctr, cvr,
ctcvr for the funnel; the label names and their mean AUC for independent
tasks.
"""

from __future__ import annotations

import math
from typing import Sequence

from adaftr_tf import objective as objective_lib

FUNNEL_TASKS = objective_lib.FUNNEL_TASKS
RELATEDNESS_METRICS = ("tau_mean", "tau_at_min", "tau_at_max",
                       "agreement_mean", "spearman_neg_tau_vs_r",
                       "spearman_agreement_vs_r")


def table_metrics(tasks: Sequence[str] = FUNNEL_TASKS) -> tuple[str, ...]:
  """The full table's columns: per task AUC, log loss, ECE, predicted /
  observed, then the relatedness columns."""
  return tuple(f"{t}_{m}" for m in ("auc", "logloss", "ece", "pred_obs_ratio")
               for t in tasks) + RELATEDNESS_METRICS


def headline_metrics(tasks: Sequence[str] = FUNNEL_TASKS) -> tuple[str, ...]:
  """The short table (README): AUCs, the last task's log loss (CTCVR), the
  calibration of the conditional CVR (funnel) or of each task, and the
  relatedness columns."""
  if tuple(tasks) == FUNNEL_TASKS:
    return ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctcvr_logloss",
            "cvr_pred_obs_ratio", "tau_mean", "spearman_neg_tau_vs_r",
            "spearman_agreement_vs_r")
  return (*(f"{t}_auc" for t in tasks), "mean_auc",
          *(f"{t}_pred_obs_ratio" for t in tasks), "tau_mean",
          "spearman_neg_tau_vs_r")


TABLE_METRICS = table_metrics()
HEADLINE_METRICS = headline_metrics()
ORACLE_METRICS = ("oracle_ctr_auc", "oracle_cvr_auc", "oracle_ctcvr_auc")
PAIRED_METRICS = ("cvr_auc", "ctcvr_auc", "ctr_auc")


def paired_metrics(tasks: Sequence[str] = FUNNEL_TASKS) -> tuple[str, ...]:
  """What the paired table compares: CVR, CTCVR, CTR AUC for the funnel;
  each task's AUC and their mean for independent tasks."""
  if tuple(tasks) == FUNNEL_TASKS:
    return PAIRED_METRICS
  return (*(f"{t}_auc" for t in tasks), "mean_auc")


def markdown_table(summary: dict, methods: list[str],
                   metrics: tuple[str, ...] = TABLE_METRICS) -> str:
  """Mean ± std per method of `metrics`; oracle AUCs as a last row when
  present. A metric no method has is left out; a method without it gets —;
  an undefined one (NaN: a Spearman correlation of a constant, e.g. a fixed
  tau) gets `undefined`."""
  columns = [m for m in metrics if any(m in summary[x] for x in methods)]
  lines = ["| method | " + " | ".join(columns) + " |",
           "| --- |" + " --- |" * len(columns)]
  for method in methods:
    cells = []
    for column in columns:
      stat = summary[method].get(column)
      if stat is None:
        cells.append("—")
      elif math.isnan(stat["mean"]):
        cells.append("undefined")
      else:
        cells.append(f"{stat['mean']:.4f} ± {stat['std']:.4f}")
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  first = summary[methods[0]]
  if all(k in first for k in ORACLE_METRICS):
    oracle = {c.replace("oracle_", ""): first[c]["mean"] for c in ORACLE_METRICS}
    lines.append("| oracle (true probabilities) | " + " | ".join(
        f"{oracle[c]:.4f}" if c in oracle else "" for c in columns) + " |")
  return "\n".join(lines)


def paired_table(paired: dict[str, dict]) -> str:
  """The paired differences as a markdown table."""
  cell = lambda d: (f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
                    if math.isfinite(d["low"]) else f"{d['mean']:+.4f}")
  first = next(iter(paired.values()), {})
  keys = [k for k, v in first.items() if isinstance(v, dict)]  # the metrics
  title = lambda key: (key[:-len("_auc")].upper() if key[:-len("_auc")] in
                       FUNNEL_TASKS else key[:-len("_auc")]) + " AUC"
  lines = ["| method | baseline | seeds | " + " | ".join(
      f"Δ {title(k)} [95% CI]" for k in keys)
           + " | share of oracle CVR gain |",
           "| --- | --- | ---: |" + " --- |" * len(keys) + " ---: |"]
  for name, e in paired.items():
    share = e["fraction_of_oracle_cvr_gain"]
    cells = [name, e["baseline"], str(len(e["seeds"]))]
    cells += [cell(e[key]) for key in keys]
    cells.append(f"{share:.2f}" if math.isfinite(share) else "—")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
