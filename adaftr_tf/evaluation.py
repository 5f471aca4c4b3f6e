"""Full-pass evaluation: collect a model's outputs over a dataset and report.

Reported keys (DESIGN.md §1), for the funnel objective:
  ctr_*   on all impressions (labels: click),
  cvr_*   on clicked impressions only (labels: conversion),
  ctcvr_* on all impressions (labels: conversion);
for independent tasks (adaftr_tf/objective.py) `{label name}_*` per task on
all rows, and `mean_auc`; each with `_auc`, `_logloss`, `_ece`, `_pred_obs_ratio`, `_count`; `tau_*`
(mean, std, percentiles) and `agreement_*` (the measured per-instance cosine
between the CTR and CTCVR loss gradients) for AdaFTR models; on synthetic data
also the oracle AUCs (`oracle_*_auc`, the best any model can reach) and the
Spearman correlations with the planted `r` of the learned relatedness (-tau;
the predicted agreement is a decreasing function of tau, so it has the same
rank correlation) and of the measured agreement.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf import metrics as M
from adaftr_tf import objective as objective_lib

COLLECTED_OUTPUTS = (F.CTR, F.CVR, F.CTCVR, F.TAU)
AGREEMENT = "agreement"


def collect(model, dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
  """Runs `model` over `dataset` once and concatenates outputs, labels, oracle.

  Args:
    model: a `CtrCvrModel` (or any callable returning the output dict).
    dataset: elements `(features, labels)` or `(features, labels, oracle)`.

  Returns:
    dict name -> `[n]` array: every output in COLLECTED_OUTPUTS the model
    gives, the labels and the oracle columns present in the data.
  """
  probe = getattr(model, "alignment_task", None) is not None

  @tf.function
  def predict(features, labels):
    outputs = model(features, training=False)
    collected = {k: outputs[k] for k in COLLECTED_OUTPUTS if k in outputs}
    if probe:  # measured CTR/CTCVR gradient agreement, for every tau mode
      collected[AGREEMENT] = model.gradient_agreement(features, labels)
    return collected

  chunks: dict[str, list[np.ndarray]] = {}
  for element in dataset:
    features, labels = element[0], element[1]
    extra = element[2] if len(element) > 2 else {}
    for source in (predict(features, labels), labels, extra):
      for key, value in source.items():
        chunks.setdefault(key, []).append(np.asarray(value).reshape(-1))
  if not chunks:
    raise ValueError("evaluation dataset is empty")
  return {k: np.concatenate(v) for k, v in chunks.items()}


def tau_bounds(model) -> tuple[float, float] | None:
  """(tau_min, tau_max) of a model with the alignment objective, else None."""
  alignment = getattr(model, "alignment_task", None)
  return None if alignment is None else alignment.tau_bounds


def report(collected: Mapping[str, np.ndarray],
           bounds: tuple[float, float] | None = None,
           objective: objective_lib.Objective = objective_lib.FUNNEL_OBJECTIVE
           ) -> dict[str, float]:
  """Metrics of collected arrays (see the module docstring) named as
  `objective` reports them; with the tau `bounds`, the fractions of
  instances at each (`tau_at_min`, `tau_at_max`)."""
  click = collected[F.CLICK]
  conversion = collected[F.CONVERSION]
  clicked = click > 0.5
  result = {"num_examples": int(len(click))}
  if objective.kind == F.FUNNEL:
    result.update(click_rate=float(click.mean()),
                  conversion_rate=float(conversion.mean()))
  for task in objective.reported:
    rows = clicked if task.clicked_only else slice(None)
    labels = collected[task.label]
    if objective.kind != F.FUNNEL:
      result[f"{task.name}_rate"] = float(labels.mean())
    result.update(M.binary_report(labels[rows], collected[task.output][rows],
                                  task.name))
  if objective.kind != F.FUNNEL:
    result[objective_lib.MEAN_AUC] = float(np.mean(
        [result[f"{task.name}_auc"] for task in objective.reported]))
  if F.TAU in collected:
    result.update(M.distribution(collected[F.TAU], "tau"))
    if bounds is not None:
      result.update(M.at_bounds(collected[F.TAU], *bounds, "tau"))
  if AGREEMENT in collected:
    result.update(M.distribution(collected[AGREEMENT], "agreement"))
  if F.ORACLE_P_CLICK in collected:
    p_click = collected[F.ORACLE_P_CLICK]
    p_cvr = collected[F.ORACLE_P_CVR]
    result["oracle_ctr_auc"] = M.auc(click, p_click)
    result["oracle_cvr_auc"] = M.auc(conversion[clicked], p_cvr[clicked])
    result["oracle_ctcvr_auc"] = M.auc(conversion, p_click * p_cvr)
    if F.TAU in collected:
      result["spearman_neg_tau_vs_r"] = M.spearman(
          -collected[F.TAU], collected[F.ORACLE_RELATEDNESS])
    if AGREEMENT in collected:
      result["spearman_agreement_vs_r"] = M.spearman(
          collected[AGREEMENT], collected[F.ORACLE_RELATEDNESS])
  return result


def evaluate(model, dataset: tf.data.Dataset) -> dict[str, float]:
  """`report(collect(model, dataset), tau_bounds(model), its objective)`."""
  return report(collect(model, dataset), tau_bounds(model),
                getattr(model, "objective", objective_lib.FUNNEL_OBJECTIVE))
