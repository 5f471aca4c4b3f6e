"""Full-pass evaluation: collect a model's outputs over a dataset and report.

Reported keys (DESIGN.md §1), for the funnel objective:
  ctr_*   on all impressions (labels: click),
  cvr_*   on clicked impressions only (labels: conversion),
  ctcvr_* on all impressions (labels: conversion);
for independent tasks (adaftr_tf/objective.py) `{label name}_*` per task on
all rows, and `mean_auc`; each with `_auc`, `_logloss`, `_ece`,
`_reliability` (the ECE's equal-mass bins: count, mean_pred, observed),
`_pred_obs_ratio`, `_count`; with a group field (`data.group_field`, see
`group_field`), each task's GAUC (`_gauc`, `_gauc_pos_weighted`,
`_gauc_groups`, `_gauc_excluded`, `_gauc_row_share`: metrics.group_auc; the
independent objective adds `mean_gauc`) and its calibration on the most
frequent values of a segment field (`_segments`: metrics.segment_calibration;
default the group field), on the task's rows (the funnel's CVR: clicked
rows), with `group_field` and `segment_field` naming the fields; `tau_*`
(mean, std, percentiles) and `agreement_*` (the measured per-instance cosine
between the CTR and CTCVR loss gradients) for AdaFTR models; on synthetic data
also the oracle AUCs (`oracle_*_auc`, the best any model can reach) and the
Spearman correlations with the planted `r` of the learned relatedness (-tau;
the predicted agreement is a decreasing function of tau, so it has the same
rank correlation) and of the measured agreement.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf import metrics as M
from adaftr_tf import objective as objective_lib
from adaftr_tf.config import ConfigError

COLLECTED_OUTPUTS = (F.CTR, F.CVR, F.CTCVR, F.TAU)
AGREEMENT = "agreement"
FEATURE_PREFIX = "feature:"   # collected raw feature columns (group keys)
AUTO = "auto"
# `auto` groups by the first of these the data has: AliExpress's search
# session (a row key, `search_id`), Ali-CCP's user id (field 101), the
# synthetic log's user field (categorical_1); else its first row key or
# single-valued categorical field.
USER_FIELDS = ("search_id", "f101", "categorical_1")
TOP_SEGMENTS = 5
MEAN_GAUC = "mean_gauc"   # the independent objective's mean of task GAUCs


def group_fields(schema: F.FeatureSchema) -> tuple[str, ...]:
  """The fields that can group rows: the row keys (`schema.keys`), then the
  single-valued categorical features."""
  return (*schema.keys,
          *(f.name for f in schema.categorical if not f.multivalent))


def group_field(configured: str, schema: F.FeatureSchema,
                setting: str = "data.group_field") -> str | None:
  """The field `configured` (`auto` or a field name) groups by on data with
  `schema`; None when `auto` finds no single-valued categorical field.

  Raises:
    ConfigError (a ValueError; the entrypoints' one-line usage error): a
      name that is not a single-valued categorical field, naming the valid
      choices.
  """
  valid = group_fields(schema)
  if configured == AUTO:
    return next((f for f in USER_FIELDS if f in valid),
                valid[0] if valid else None)
  if configured not in valid:
    raise ConfigError(f"{setting}={configured!r} is not a row key or a "
                      "single-valued categorical field of the data; choose "
                      f"one of {[AUTO, *valid]}")
  return configured


def report_fields(model, configured: str | None = AUTO,
                  segment: str | None = None
                  ) -> tuple[str | None, str | None]:
  """(group field, segment field) of `model`'s data: `configured` (and
  `segment`, default the group field) resolved by `group_field` against the
  schema of the model's FeatureEncoder; a model without one (a stub) takes
  the names as given (`auto`: none)."""
  schema = getattr(getattr(model, "encoder", None), "schema", None)
  if schema is None:
    group = None if configured in (None, AUTO) else configured
    return group, segment or group
  group = group_field(configured, schema) if configured else None
  return group, (group_field(segment, schema, "segment_field") if segment
                 else group)


def collect(model, dataset: tf.data.Dataset,
            fields: Sequence[str | None] = ()) -> dict[str, np.ndarray]:
  """Runs `model` over `dataset` once and concatenates outputs, labels, oracle.

  Args:
    model: a `CtrCvrModel` (or any callable returning the output dict).
    dataset: elements `(features, labels)` or `(features, labels, extra)`
      (oracle columns, row keys: `reader.make_dataset`'s third element).
    fields: single-valued features or row keys whose raw values to keep (the
      group and segment fields of `report_fields`; None entries are skipped).

  Returns:
    dict name -> `[n]` array: every output in COLLECTED_OUTPUTS the model
    gives, the labels and the oracle columns present in the data, and each
    of `fields` under `FEATURE_PREFIX + name`.
  """
  fields = tuple(dict.fromkeys(f for f in fields if f))
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
    missing = [f for f in fields if f not in features and f not in extra]
    if missing:
      raise ValueError(f"fields {missing} are neither features nor extra "
                       "columns of the dataset (row keys need "
                       "make_dataset(..., with_keys=True))")
    keys = {FEATURE_PREFIX + f: features[f] if f in features else extra[f]
            for f in fields}
    oracle = {k: v for k, v in extra.items() if k in F.ORACLE_KEYS}
    for source in (predict(features, labels), labels, oracle, keys):
      for key, value in source.items():
        chunks.setdefault(key, []).append(np.asarray(value).reshape(-1))
  if not chunks:
    raise ValueError("evaluation dataset is empty")
  return {k: np.concatenate(v) for k, v in chunks.items()}


def tau_bounds(model) -> tuple[float, float] | None:
  """(tau_min, tau_max) of a model with the alignment objective, else None."""
  alignment = getattr(model, "alignment_task", None)
  return None if alignment is None else alignment.tau_bounds


def _column(collected: Mapping[str, np.ndarray], field: str | None):
  """The collected raw values of `field` `[n]` (None without a field)."""
  if field is None:
    return None
  if FEATURE_PREFIX + field not in collected:
    raise ValueError(f"no collected column of field {field!r}: collect it "
                     f"with collect(..., fields=({field!r},))")
  return collected[FEATURE_PREFIX + field]


def _task_report(labels, probs, groups, segments, name: str,
                 top_k: int) -> dict:
  """binary_report, and with `groups` / `segments` (`[n]` each, or None)
  the task's GAUC and its calibration by segment, of one task's rows."""
  result = M.binary_report(labels, probs, name)
  if groups is not None:
    result.update(M.group_auc(labels, probs, groups, name))
  if segments is not None:
    result[f"{name}_segments"] = M.segment_calibration(labels, probs,
                                                       segments, top_k)
  return result


def report(collected: Mapping[str, np.ndarray],
           bounds: tuple[float, float] | None = None,
           objective: objective_lib.Objective = objective_lib.FUNNEL_OBJECTIVE,
           group_field: str | None = None, segment_field: str | None = None,
           top_k: int = TOP_SEGMENTS) -> dict:
  """Metrics of collected arrays (see the module docstring) named as
  `objective` reports them; with the tau `bounds`, the fractions of
  instances at each (`tau_at_min`, `tau_at_max`); with `group_field`, GAUC
  over its values; calibration on the `top_k` most frequent values of
  `segment_field` (default `group_field`). Both fields' columns must have
  been collected (`collect(..., fields=...)`)."""
  click = collected[F.CLICK]
  conversion = collected[F.CONVERSION]
  clicked = click > 0.5
  segment_field = segment_field or group_field
  groups = _column(collected, group_field)
  segments = _column(collected, segment_field)
  result = {"num_examples": int(len(click))}
  if objective.kind == F.FUNNEL:
    result.update(click_rate=float(click.mean()),
                  conversion_rate=float(conversion.mean()))
  for task in objective.reported:
    rows = clicked if task.clicked_only else slice(None)
    labels = collected[task.label]
    if objective.kind != F.FUNNEL:
      result[f"{task.name}_rate"] = float(labels.mean())
    result.update(_task_report(
        labels[rows], collected[task.output][rows],
        None if groups is None else groups[rows],
        None if segments is None else segments[rows], task.name, top_k))
  if objective.kind != F.FUNNEL:
    result[objective_lib.MEAN_AUC] = float(np.mean(
        [result[f"{task.name}_auc"] for task in objective.reported]))
    if groups is not None:
      result[MEAN_GAUC] = float(np.mean(
          [result[f"{task.name}_gauc"] for task in objective.reported]))
  if groups is not None:
    result["group_field"] = group_field
  if segments is not None:
    result["segment_field"] = segment_field
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


def evaluate(model, dataset: tf.data.Dataset, group_field: str | None = AUTO,
             segment_field: str | None = None,
             top_k: int = TOP_SEGMENTS) -> dict:
  """`report` of `collect(model, dataset)` with `tau_bounds(model)`, its
  objective, and the group and segment fields of `report_fields` (pass
  `config.data.group_field`; `auto` is that field's default)."""
  group, segment = report_fields(model, group_field, segment_field)
  return report(collect(model, dataset, (group, segment)), tau_bounds(model),
                getattr(model, "objective", objective_lib.FUNNEL_OBJECTIVE),
                group, segment, top_k)
