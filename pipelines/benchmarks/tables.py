"""The quality benchmark's tables: which metrics, and their markdown.

The columns follow the reported tasks (adaftr_tf/objective.py): ctr, cvr,
ctcvr for the funnel; the label names and their mean AUC for independent
tasks. GAUC (the impression-weighted AUC per group, adaftr_tf/evaluation.py)
stands beside AUC: every task's in the full table, CTR's and CTCVR's (the
two over all impressions) or the tasks' mean in the headline, CVR's and
CTCVR's or the mean in the paired table.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from adaftr_tf import evaluation
from adaftr_tf import objective as objective_lib

FUNNEL_TASKS = objective_lib.FUNNEL_TASKS
RELATEDNESS_METRICS = ("tau_mean", "tau_at_min", "tau_at_max",
                       "agreement_mean", "spearman_neg_tau_vs_r",
                       "spearman_agreement_vs_r")


def table_metrics(tasks: Sequence[str] = FUNNEL_TASKS) -> tuple[str, ...]:
  """The full table's columns: per task AUC, GAUC, log loss, ECE, predicted
  / observed, then the relatedness columns."""
  return tuple(f"{t}_{m}" for m in ("auc", "gauc", "logloss", "ece",
                                    "pred_obs_ratio")
               for t in tasks) + RELATEDNESS_METRICS


def headline_metrics(tasks: Sequence[str] = FUNNEL_TASKS) -> tuple[str, ...]:
  """The short table (README): AUCs, the GAUCs over all impressions (CTR,
  CTCVR) or their mean, the last task's log loss (CTCVR), the calibration
  of the conditional CVR (funnel) or of each task, and the relatedness
  columns."""
  if tuple(tasks) == FUNNEL_TASKS:
    return ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_gauc", "ctcvr_gauc",
            "ctcvr_logloss", "cvr_pred_obs_ratio", "tau_mean",
            "spearman_neg_tau_vs_r", "spearman_agreement_vs_r")
  return (*(f"{t}_auc" for t in tasks), "mean_auc", evaluation.MEAN_GAUC,
          *(f"{t}_pred_obs_ratio" for t in tasks), "tau_mean",
          "spearman_neg_tau_vs_r")


TABLE_METRICS = table_metrics()
HEADLINE_METRICS = headline_metrics()
ORACLE_METRICS = ("oracle_ctr_auc", "oracle_cvr_auc", "oracle_ctcvr_auc")
PAIRED_METRICS = ("cvr_auc", "ctcvr_auc", "ctr_auc", "cvr_gauc", "ctcvr_gauc")


def paired_metrics(tasks: Sequence[str] = FUNNEL_TASKS) -> tuple[str, ...]:
  """What the paired table compares: CVR, CTCVR, CTR AUC and CVR, CTCVR
  GAUC for the funnel; each task's AUC, their mean and the mean GAUC for
  independent tasks."""
  if tuple(tasks) == FUNNEL_TASKS:
    return PAIRED_METRICS
  return (*(f"{t}_auc" for t in tasks), "mean_auc", evaluation.MEAN_GAUC)


def metric_title(key: str) -> str:
  """`cvr_auc` -> `CVR AUC`, `ctcvr_gauc` -> `CTCVR GAUC`, `mean_auc` ->
  `mean AUC` (task names other than the funnel's stay as they are)."""
  for suffix in ("_gauc", "_auc"):
    if key.endswith(suffix):
      task = key[:-len(suffix)]
      return (f"{task.upper() if task in FUNNEL_TASKS else task} "
              f"{suffix[1:].upper()}")
  return key


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


def learning_curve_table(curves: dict[str, dict],
                         methods: Sequence[str]) -> str:
  """`quality.learning_curves` as a markdown table: a row per method (in
  `methods`' order), a column per epoch with "train / valid"."""
  rows = [m for m in methods if m in curves]
  epochs = max((len(curves[m]["valid"]) for m in rows), default=0)
  lines = ["| method | runs | " + " | ".join(
      f"epoch {e + 1} train / valid" for e in range(epochs)) + " |",
           "| --- | ---: |" + " --- |" * epochs]
  for method in rows:
    curve = curves[method]
    cells = [f"{t:.4f} / {v:.4f}" for t, v in zip(curve["train"],
                                                   curve["valid"])]
    cells += ["—"] * (epochs - len(cells))
    lines.append(f"| {method} | {curve['runs']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def paired_table(paired: dict[str, dict]) -> str:
  """The paired differences as a markdown table."""
  cell = lambda d: (f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
                    if math.isfinite(d["low"]) else f"{d['mean']:+.4f}")
  first = next(iter(paired.values()), {})
  keys = [k for k, v in first.items() if isinstance(v, dict)]  # the metrics
  funnel = "cvr_auc" in keys   # the oracle's share: CVR AUC gains only
  lines = ["| method | baseline | seeds | " + " | ".join(
      f"Δ {metric_title(k)} [95% CI]" for k in keys)
           + (" | share of oracle CVR gain |" if funnel else " |"),
           "| --- | --- | ---: |" + " --- |" * len(keys)
           + (" ---: |" if funnel else "")]
  for name, e in paired.items():
    share = e["fraction_of_oracle_cvr_gain"]
    cells = [name, e["baseline"], str(len(e["seeds"]))]
    cells += [cell(e[key]) for key in keys]
    if funnel:
      cells.append(f"{share:.2f}" if math.isfinite(share) else "—")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def within(report: dict, task: str, standard_errors: float = 2.0) -> bool:
  """Whether `task`'s predicted/observed ratio in `report` lies within
  `standard_errors` standard errors of the observed rate of 1."""
  ratio = report.get(f"{task}_pred_obs_ratio", math.nan)
  se = report.get(f"{task}_pred_obs_ratio_se", math.nan)
  return abs(ratio - 1.0) <= standard_errors * se


def calibration_table(runs: list[dict], methods: list[str],
                      tasks: Sequence[str], key: str = "calibrated") -> str:
  """Per method, test predicted/observed and ECE per task, mean ± std over
  seeds, before → after the calibrators (`run["test"][key]`), the AUC
  change the calibration made (0 by construction), and how many seeds have
  every task's calibrated ratio within 2 standard errors of 1."""
  stat = lambda values: f"{np.mean(values):.3f} ± {np.std(values):.3f}"
  header = ["method", "seeds"]
  for t in tasks:
    header += [f"{t} pred/obs", f"{t} ECE"]
  header += ["max abs Δ AUC", "seeds within 2 s.e."]
  lines = ["| " + " | ".join(header) + " |",
           "| --- | ---: |" + " --- |" * (2 * len(tasks)) + " ---: | ---: |"]
  for method in methods:
    chosen = [{**r["test"], "calibrated": r["test"][key]} for r in runs
              if r["method"] == method and key in r["test"]]
    if not chosen:
      continue
    cells = [method, str(len(chosen))]
    for t in tasks:
      for name in (f"{t}_pred_obs_ratio", f"{t}_ece"):
        cells.append(stat([r[name] for r in chosen]) + " → " + stat(
            [r["calibrated"][name] for r in chosen]))
    change = max(abs(r["calibrated"][f"{t}_auc"] - r[f"{t}_auc"])
                 for r in chosen for t in tasks)
    cells.append(f"{change:.1e}")
    cells.append(str(sum(all(within(r["calibrated"], t) for t in tasks)
                         for r in chosen)))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
